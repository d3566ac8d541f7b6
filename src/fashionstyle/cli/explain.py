"""`fashionstyle explain RUN --images PHOTOS --out FOLDER`: Grad-CAM heat maps on a page."""
from __future__ import annotations

import argparse
from pathlib import Path

from fashionstyle.cli.args import add_operating_point_arg, add_recursive_arg, add_run_arg, int_in

ABOUT = "Grad-CAM heat maps: where each style's evidence lies in images"
EXAMPLE = "fashionstyle explain runs/lite0 --images a.jpg photos/ --out maps/"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("explain", help=ABOUT)
    add_run_arg(p)
    p.add_argument("--images", nargs="+", required=True, help="image files or folders of images to explain")
    add_recursive_arg(p)
    p.add_argument("--out", required=True, help="folder for index.html and the overlay PNGs")
    p.add_argument("--labels-to-show", type=int_in(1), default=3,
                   help="most labels per image: the --label ones, then the predicted ones (default: 3)")
    p.add_argument("--label", action="append", help="a label to show whether predicted or not (repeatable)")
    add_operating_point_arg(p)
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.analysis.explain_page import explain_run
    from fashionstyle.core import atomic
    from fashionstyle.core.overwrite import refuse_overwriting_inputs
    from fashionstyle.data.images.files import gather_images
    from fashionstyle.inference.outputs import csv_text

    images, left_out = gather_images(args.images, args.recursive)
    refuse_overwriting_inputs({"--out": args.out}, {"--images": images})  # it writes only new names inside --out
    print(f"explaining {len(images)} image(s) ...", flush=True)
    page = explain_run(args.run, images, args.out, args.labels_to_show, args.label or (),
                       operating_point=args.operating_point)
    print(f"heat maps of {len(images)} image(s) written; open {page}")
    if left_out:
        skipped = atomic.write_text(Path(args.out) / "skipped.txt", csv_text(left_out))
        print(f"left out {len(left_out)} folder entries that are not images, listed with the reason in {skipped}")
    return 0
