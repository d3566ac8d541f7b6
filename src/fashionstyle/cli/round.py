"""`fashionstyle round PREV_RUN --out runs/round2 --label-studio URL --project ID`: one labelling round in one
command: the project's export merged with the previous run's labels, a run trained from its weights, and
the two compared on the same validation photos (labelstudio/round.py)."""
from __future__ import annotations

import argparse

from fashionstyle.cli.args import int_in

ABOUT = "one labelling round: merge a Label Studio export into a run's labels, train from its weights, compare"
EXAMPLE = ("fashionstyle round runs/round0 --label-studio http://localhost:8080 --project 1 --image-dir /srv "
           "--out runs/round1\n"
           "fashionstyle round runs/round0 --export project-1-at-2026-12-07.json --image-dir /srv --out runs/round1")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("round", help=ABOUT, description=ABOUT)
    p.add_argument("run", help="the previous round's run (trained by `fashionstyle train` or `round`)")
    p.add_argument("--out", required=True, help="the new run; its inputs (the export, the merged labels) go to "
                                                "OUT.round/")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", default=None, metavar="FILE",
                        help="the project's export (JSON, JSON-min or CSV), or any label file of the run's labels")
    source.add_argument("--label-studio", default=None, metavar="URL",
                        help="pull the export of --project from this Label Studio (token: $LABEL_STUDIO_API_KEY)")
    p.add_argument("--project", type=int_in(1), default=None, metavar="ID",
                   help="with --label-studio: the project's id (the number in its URL)")
    p.add_argument("--image-dir", default=None, metavar="DIR",
                   help="Label Studio's document root, that the export's local-files paths are relative to "
                        "(needed with --label-studio; default with --export: the export's folder)")
    p.add_argument("--epochs", type=int_in(1), default=None,
                   help="epochs of the round's training (default: the previous run's)")
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.core.errors import FashionStyleError
    from fashionstyle.labelstudio.round import plan_round, train_round

    if args.label_studio and (args.project is None or args.image_dir is None):
        raise FashionStyleError("--label-studio needs --project ID and --image-dir (Label Studio's document root)")
    if args.project is not None and not args.label_studio:
        raise FashionStyleError("--project needs --label-studio URL (or give the exported file as --export)")
    plan = plan_round(args.run, args.out, export=args.export, image_dir=args.image_dir,
                      label_studio=(args.label_studio, args.project) if args.label_studio else None,
                      epochs=args.epochs, say=print)
    scores = train_round(plan)
    print(f"run written to {plan.out}")
    print(scores.table())
    return 0
