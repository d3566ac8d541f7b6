"""`fashionstyle report RUN --out FOLDER`: an HTML page of a run's scores, figures and photos."""
from __future__ import annotations

import argparse
from pathlib import Path

from fashionstyle.cli.args import add_label_args, add_run_arg

ABOUT = "an HTML page: headline scores, figures and, with --labels, image grids"
EXAMPLE = "fashionstyle report runs/lite0 --labels labels.csv --out report/"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help=ABOUT)
    add_run_arg(p)
    p.add_argument("--out", required=True, help="folder for index.html and its PNG figures")
    p.add_argument("--compare", nargs="+", default=(), help="other runs to show side by side")
    add_label_args(p, required=False)  # --labels: the grids' images, and the label statistics' training split
    p.add_argument("--audit", default=None,
                   help="issues.csv of `fashionstyle audit`: show its most suspect labels (default: RUN/issues.csv)")
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.analysis.report import write_report
    from fashionstyle.analysis.report_page import check_report_folder
    from fashionstyle.core.overwrite import refuse_overwriting_inputs
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels.read import read_run_labels

    refuse_overwriting_inputs({"--out": [args.out, Path(args.out) / "index.html"]},
                              {"--labels": args.labels, "--audit": args.audit})
    check_report_folder(Path(args.out))  # before the label file is read
    table = None
    if args.labels:  # the image grids and the training split of the label statistics
        table = read_run_labels(RunDir.open(args.run), args.labels, args.images, args.label_names)
    page = write_report(args.run, args.out, compare=args.compare, labels=table, audit=args.audit, progress=True)
    print(f"report written to {page}")
    return 0
