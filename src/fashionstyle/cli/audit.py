"""`fashionstyle audit RUN --labels L --out issues.csv`: likely wrong labels, found by cleanlab."""
from __future__ import annotations

import argparse
from pathlib import Path

from fashionstyle.cli.args import add_label_args, int_in
from fashionstyle.core.choices import LABEL_FIXES
from fashionstyle.core.errors import FashionStyleError

ABOUT = "rank likely wrong labels with cleanlab on held-out probabilities"
EXAMPLE = "fashionstyle audit runs/cv5 --labels labels.csv --out issues.csv"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("audit", help=ABOUT)
    p.add_argument("run", help="run directory, best from cv (its out-of-fold probabilities cover every labelled "
                               "image; a train run's cover its validation split only)")
    add_label_args(p)
    p.add_argument("--out", required=True, help="CSV of suspect (image, label) pairs, most suspect first")
    p.add_argument("--top", type=int_in(1), default=None,
                   help="list the K most suspect pairs, flagged or not (default: the pairs cleanlab flags)")
    p.add_argument("--fix", choices=LABEL_FIXES, default=None,
                   help="with --cleaned: flip the listed pairs' labels, or drop the images they name")
    p.add_argument("--cleaned", default=None, help="the cleaned copy of the label file to write (same format)")
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.analysis.audit import audit_run, write_issues
    from fashionstyle.core.overwrite import refuse_overwriting_inputs, run_inputs
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.labels.read import read_run_labels
    from fashionstyle.data.labels.relabel import write_cleaned

    if (args.fix is None) != (args.cleaned is None):
        raise FashionStyleError("--fix and --cleaned go together: --fix flip|drop --cleaned OUT")
    run_dir = RunDir.open(args.run)
    refuse_overwriting_inputs({"--out": args.out, "--cleaned": args.cleaned},
                              {"--labels": args.labels, "run": run_inputs(run_dir)})
    if args.cleaned and Path(args.cleaned).resolve() == Path(args.out).resolve():
        raise FashionStyleError(f"{args.cleaned}: is also --out; write the cleaned copy elsewhere")
    table = read_run_labels(run_dir, args.labels, args.images, args.label_names)
    issues, notes = audit_run(run_dir, table, args.top)
    for note in notes:
        print(f"note: {note}")
    path = write_issues(args.out, issues)
    flagged = sum(i.flagged for i in issues)
    print(f"{len(issues)} suspect (image, label) pairs ({flagged} flagged by cleanlab) written to {path}")
    if args.fix:
        cleaned = write_cleaned(table, [(i.row, i.label) for i in issues], args.fix, args.cleaned)
        what = "flipped" if args.fix == "flip" else f"dropped ({len({i.row for i in issues})} images)"
        print(f"cleaned copy of {table.source} with those pairs {what} written to {cleaned}")
    return 0
