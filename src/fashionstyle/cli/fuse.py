"""`fashionstyle fuse RUNS --out F` and `select RUNS --out S`: new runs made of other runs' probabilities."""
from __future__ import annotations

import argparse

from fashionstyle.cli.args import int_in
from fashionstyle.cli.settings import print_validation

ABOUT = {"fuse": "average the probabilities of several runs into a new run",
         "select": "choose runs per label greedily (repeats allowed) into a new run"}
EXAMPLE = {"fuse": "fashionstyle fuse runs/lite0 runs/lite1 runs/lite2 --out runs/fused",
           "select": "fashionstyle select runs/lite0 runs/lite1 runs/lite2 --out runs/selected"}


def add_parser(sub: argparse._SubParsersAction, name: str = "fuse") -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=ABOUT[name])
    p.add_argument("runs", nargs="+", help="run directories with the same labels" if name == "fuse"
                   else "candidate run directories with the same labels")
    p.add_argument("--out", required=True, help="run directory to create")
    if name == "fuse":
        p.add_argument("--weights", type=float, nargs="+", default=None, help="one weight per run (default: equal)")
        p.add_argument("--beta", type=float, default=None,
                       help="F-beta for the re-tuned thresholds (default: the runs')")
    else:
        p.add_argument("--beta", type=float, default=2.0,
                       help="F-beta to maximise and tune thresholds for (default: 2)")
        p.add_argument("--max-rounds", type=int_in(0), default=10,
                       help="most additions per label after its best single run (default: 10)")
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.training.fusion import fuse_runs

    fused = fuse_runs(args.runs, args.out, args.weights, args.beta)
    print(f"fused run of {len(args.runs)} runs written to {fused.path}")
    return print_validation(fused)


def run_select(args: argparse.Namespace) -> int:
    from fashionstyle.training.selection import select_runs, selection_table

    selected = select_runs(args.runs, args.out, beta=args.beta, max_rounds=args.max_rounds)
    print(f"per-label selection of {len(args.runs)} runs written to {selected.path}")
    print(selection_table(selected))
    return 0
