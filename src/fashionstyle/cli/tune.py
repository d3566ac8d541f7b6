"""`fashionstyle tune RUN`: re-tune the per-label thresholds from validation probabilities."""
from __future__ import annotations

import argparse

from fashionstyle.cli.args import add_label_args, add_run_arg
from fashionstyle.cli.settings import print_validation
from fashionstyle.core.choices import DEFAULT_RULE, THRESHOLD_RULES, TTA_MODES
from fashionstyle.core.errors import FashionStyleError

ABOUT = "re-tune per-label thresholds from validation probabilities"
EXAMPLE = "fashionstyle tune runs/lite0 --tta flip"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("tune", help=ABOUT)
    add_run_arg(p)
    p.add_argument("--beta", type=float, default=2.0, help="F-beta to tune the thresholds for (default: 2)")
    p.add_argument("--tta", choices=TTA_MODES, default=None,
                   help="predict validation again with this TTA and tune on that (default: keep the run's)")
    p.add_argument("--rule", choices=THRESHOLD_RULES, default=None,
                   help=f"{THRESHOLD_RULES.help()} (default: the run's own, as its thresholds.json says; "
                        f"{DEFAULT_RULE} for a run without)")
    add_label_args(p, required=False)
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.analysis.evaluate import tune_run
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels import read_run_labels
    from fashionstyle.inference.hub_resolve import is_hub_cache_entry

    run_dir = RunDir.open(args.run)
    if is_hub_cache_entry(run_dir.path):  # new thresholds there would be what the id or folder loads from then on
        raise FashionStyleError(f"{args.run}: a hub model, opened from its cached run {run_dir.path}, which keeps the "
                                f"thresholds its config.json says; copy that folder (cp -r {run_dir.path} "
                                "runs/mine) and tune the copy")
    if args.labels and args.tta in (None, run_dir.tta()):
        raise FashionStyleError(f"--labels {args.labels} is read only to find the validation images that --tta "
                                f"predicts again (the run's TTA is {run_dir.tta()}); without it tune re-tunes on "
                                f"the stored validation probabilities: drop --labels")
    table = read_run_labels(run_dir, args.labels, args.images, args.label_names) if args.labels else None
    tuner = tune_run(run_dir, args.beta, args.tta, table, args.rule)
    print(f"thresholds re-tuned (beta={args.beta:g}, TTA {run_dir.tta()}, rule {tuner.rule}) and written to "
          f"{run_dir / 'thresholds.json'}")
    return print_validation(run_dir)
