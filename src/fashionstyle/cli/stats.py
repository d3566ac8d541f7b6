"""`fashionstyle stats LABELS`: label counts, ratios and loss weights."""
from __future__ import annotations

import argparse
import sys

from fashionstyle.cli.args import add_image_dir, config_default, config_help

ABOUT = "label counts, ratios and loss weights"
EXAMPLE = "fashionstyle stats labels.csv"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("stats", help=ABOUT)
    p.add_argument("labels", help=config_help("labels"))
    add_image_dir(p)
    p.add_argument("--label-names", nargs="+", default=None, help=config_help("label_names"))
    power = config_default("weight_power")
    p.add_argument("--weight-power", type=float, default=power,
                   help=f"{config_help('weight_power')} (default: {power}, as train's)")
    p.add_argument("--all", action="store_true",
                   help="list every label (default: the first 40, then totals over all of them)")
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.data.labels.stats import SHOWN, stats_report

    warnings, text = stats_report(args.labels, args.images, args.label_names, args.weight_power,
                                  None if args.all else SHOWN)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(text)
    return 0
