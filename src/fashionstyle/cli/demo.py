"""`fashionstyle demo`: synthetic outfits -> fine-tune -> tune -> evaluate, on the CPU in about a minute."""
from __future__ import annotations

import argparse
from pathlib import Path

from fashionstyle.cli.args import int_in

ABOUT = "synthetic outfits: train, tune, evaluate on the CPU"
EXAMPLE = "fashionstyle demo"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help=ABOUT)
    p.add_argument("--out", default="demo_run", help="folder for the data and the run (default: demo_run)")
    p.add_argument("--n-images", type=int_in(50), default=1500, help="synthetic images (default: 1500)")
    p.add_argument("--epochs", type=int_in(1), default=8, help="training epochs (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the training (default: 0)")
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.demo import run_demo

    return run_demo(Path(args.out), n_images=args.n_images, epochs=args.epochs, seed=args.seed)
