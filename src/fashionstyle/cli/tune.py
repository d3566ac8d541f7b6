"""`fashionstyle tune RUN`: re-tune the per-label thresholds from validation probabilities, or add a named
operating point (`--operating-point storefront --min-precision 0.9 --max-labels 3 --exclusive "A,B"`)."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fashionstyle.cli.args import add_label_args, add_run_arg
from fashionstyle.cli.settings import print_validation
from fashionstyle.core.choices import DEFAULT_RULE, THRESHOLD_RULES, TTA_MODES
from fashionstyle.core.errors import FashionStyleError

if TYPE_CHECKING:  # the command imports it when it runs (`fashionstyle --help` stays light)
    from fashionstyle.core.run import RunDir

ABOUT = "re-tune per-label thresholds from validation probabilities"
EXAMPLE = "fashionstyle tune runs/lite0 --operating-point storefront --min-precision 0.9 --max-labels 3"
POINT_RULES = ("min_precision", "min_recall", "max_labels", "exclusive", "at_least_one")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("tune", help=ABOUT)
    add_run_arg(p)
    p.add_argument("--beta", type=float, default=None, help="F-beta to tune the thresholds for (default: 2)")
    p.add_argument("--tta", choices=TTA_MODES, default=None,
                   help="predict validation again with this TTA and tune on that (default: keep the run's)")
    p.add_argument("--rule", choices=THRESHOLD_RULES, default=None,
                   help=f"{THRESHOLD_RULES.help()} (default: the run's own, as its thresholds.json says; "
                        f"{DEFAULT_RULE} for a run without)")
    add_label_args(p, required=False)
    add_point_args(p.add_argument_group("operating points (stored beside the run's own thresholds, chosen on the "
                                        "stored validation probabilities; docs/training.md)"))
    return p


def add_point_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--operating-point", default=None, metavar="NAME",
                   help="add (or with --overwrite replace) the operating point NAME instead of re-tuning the "
                        "run's own thresholds; `predict`, `evaluate`, `serve`, `suggest` and `load()` take it")
    goal = g.add_mutually_exclusive_group()
    goal.add_argument("--min-precision", type=float, default=None, metavar="P",
                      help="per label, the highest recall whose precision's 90%% lower bound is at least P; a "
                           "label that cannot reach it is never predicted at this point (default goal: --beta)")
    goal.add_argument("--min-recall", type=float, default=None, metavar="R",
                      help="per label, the highest precision whose recall's 90%% lower bound is at least R")
    g.add_argument("--max-labels", type=int, default=None, metavar="K",
                   help="at most K labels per photo, the most probable first")
    g.add_argument("--exclusive", action="append", default=[], metavar="A,B,C",
                   help="labels of which a photo carries at most one (the most probable that passes); repeat "
                        "for several groups")
    g.add_argument("--at-least-one", action="store_true", help="a photo where no label passes gets its most "
                                                              "probable one")
    g.add_argument("--overwrite", action="store_true", help="replace an operating point of the same name")


def run(args: argparse.Namespace) -> int:
    from fashionstyle.analysis.evaluate import tune_run
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels.read import read_run_labels
    from fashionstyle.inference.hub_resolve import is_hub_cache_entry

    run_dir = RunDir.open(args.run)
    given = [f"--{name.replace('_', '-')}" for name in POINT_RULES if getattr(args, name) not in (None, [], False)]
    if given and not args.operating_point:
        raise FashionStyleError(f"{given[0]} describes an operating point: name it with --operating-point NAME "
                                "(the run's own thresholds keep the F-beta rule)")
    if is_hub_cache_entry(run_dir.path):  # new thresholds there would be what the id or folder loads from then on
        raise FashionStyleError(f"{args.run}: a hub model, opened from its cached run {run_dir.path}, which keeps the "
                                f"thresholds its config.json says; copy that folder (cp -r {run_dir.path} "
                                "runs/mine) and tune the copy")
    if args.labels and args.tta in (None, run_dir.tta()):
        raise FashionStyleError(f"--labels {args.labels} is read only to find the validation images that --tta "
                                f"predicts again (the run's TTA is {run_dir.tta()}); without it tune re-tunes on "
                                f"the stored validation probabilities: drop --labels")
    if args.operating_point:
        return add_point(run_dir, args)
    table = read_run_labels(run_dir, args.labels, args.images, args.label_names) if args.labels else None
    beta = 2.0 if args.beta is None else args.beta
    tuner = tune_run(run_dir, beta, args.tta, table, args.rule)
    print(f"thresholds re-tuned (beta={beta:g}, TTA {run_dir.tta()}, rule {tuner.rule}) and written to "
          f"{run_dir / 'thresholds.json'}")
    return print_validation(run_dir)


def add_point(run_dir: RunDir, args: argparse.Namespace) -> int:
    """Fit the named point on the stored validation probabilities, store it, print its validation table."""
    from fashionstyle.analysis.evaluate import format_point_scores
    from fashionstyle.analysis.tracking import update_trackers
    from fashionstyle.core.model_card import write_model_card
    from fashionstyle.core.operating_points import fit_point, point_scores

    if args.labels or args.tta:
        raise FashionStyleError("--operating-point is chosen on the stored validation probabilities (the run's TTA); "
                                "drop --labels and --tta")
    objective, target = (("min-precision", args.min_precision) if args.min_precision is not None else
                         ("min-recall", args.min_recall) if args.min_recall is not None else
                         ("fbeta", 2.0 if args.beta is None else args.beta))
    names = run_dir.label_names()
    _, probs, targets = run_dir.val_probs()
    groups = [[n.strip() for n in group.split(",") if n.strip()] for group in args.exclusive]
    point = fit_point(args.operating_point, probs, targets, names, objective, target, args.max_labels, groups,
                      args.at_least_one, args.rule)
    run_dir.write_operating_point(point, args.overwrite)
    write_model_card(run_dir)  # the card lists the run's points
    update_trackers(run_dir, figures=False)  # so does the run's MLflow / W&B run, when it has one
    print(format_point_scores(names, point_scores(point, probs, targets, run_dir.thresholds().beta), point,
                              title=f"validation ({len(probs)} images) at operating point {point.name}"))
    print(f"operating point {point.name!r} written to {run_dir / 'operating_points.json'}; use it with "
          f"--operating-point {point.name}")
    return 0
