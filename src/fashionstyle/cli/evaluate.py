"""`fashionstyle evaluate RUN --labels L`: per-label precision, recall and F2 of held-out photos."""
from __future__ import annotations

import argparse

from fashionstyle.cli.args import (add_decode_arg, add_label_args, add_loader_args, add_placement_args, add_run_arg,
                                   add_operating_point_arg, add_tta_arg)
from fashionstyle.cli.settings import loader_settings, placement, predict_settings
from fashionstyle.core.choices import RUNTIMES

ABOUT = "per-label precision/recall/F2 at 0.5 and tuned thresholds"
EXAMPLE = "fashionstyle evaluate runs/lite0 --labels labels.csv --split test"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help=ABOUT)
    add_run_arg(p)
    add_label_args(p)
    p.add_argument("--split", default=None,
                   help="train, val, test or all (default: test; all rows of a file without a split column)")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch",
                   help="score another runtime's predictions (eval_<split>_<runtime>.json)")
    add_decode_arg(p)
    add_tta_arg(p)
    add_operating_point_arg(p)
    add_loader_args(p)
    add_placement_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from fashionstyle.analysis.evaluate import evaluate_split, format_point_scores, format_scores
    from fashionstyle.core.run import RunDir
    from fashionstyle.core.run_warnings import weak_warning
    from fashionstyle.data.labels.read import read_run_labels

    run_dir = RunDir.open(args.run)
    loader = loader_settings(args)  # --decode gpu checked before anything is read
    table = read_run_labels(run_dir, args.labels, args.images, args.label_names)
    scores = evaluate_split(run_dir, table, args.split, predict_settings(args), loader, placement(args),
                            decode=args.decode)
    if scores is None:
        return 0  # a secondary rank: rank 0 scores
    print(format_scores(scores["label_names"], scores, title=f"{scores['split']} ({scores['n_images']} images)"))
    if scores["skipped_images"]:
        print(f"skipped {_images(scores['skipped_images'])} (unreadable; --on-bad-image fail to stop instead)")
    print(f"all-positive baseline macro F{scores['beta']:g}: {scores['all_positive_macro_fbeta']:.3f}")
    weak = weak_warning(scores["macro_fbeta"], scores["all_positive_macro_fbeta"],
                        np.asarray(scores["thresholds"]), scores["split"])
    if weak:
        print(f"warning: {weak}")
    if "operating_point" in scores:
        point = run_dir.contents().point(args.operating_point)
        print(format_point_scores(scores["label_names"], scores["operating_point"], point,
                                  title=f"{scores['split']} at operating point {point.name}"))
    print(f"written to {scores['path']}")
    return 0


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"
