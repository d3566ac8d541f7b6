"""`fashionstyle cache SOURCE --image-size N --out C`: decode and resize images once for training."""
from __future__ import annotations

import argparse
from pathlib import Path

from fashionstyle.cli.args import add_image_dir, add_recursive_arg, config_help, int_in

ABOUT = "decode and resize images once into a memory-mapped cache for training"
EXAMPLE = "fashionstyle cache labels.csv --image-size 224 --out cache/224"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("cache", help=ABOUT)
    p.add_argument("source", help="a label file (JD txt, label CSV or tags CSV) or a folder of images")
    add_recursive_arg(p)
    add_image_dir(p)
    p.add_argument("--label-names", nargs="+", default=None, help=config_help("label_names"))
    p.add_argument("--image-size", type=int_in(1), required=True, help="the training image size it serves")
    p.add_argument("--out", required=True, help="cache folder")
    p.add_argument("--num-workers", type=int_in(0), default=2, help="decoding processes (default: 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.core.overwrite import refuse_overwriting_inputs
    from fashionstyle.data.images.cache import INDEX, build_cache
    from fashionstyle.data.images.files import gather_images
    from fashionstyle.data.labels.read import read_labels

    source = Path(args.source)
    refuse_overwriting_inputs({"--out": [args.out, Path(args.out) / INDEX]},
                              {"source": source if source.is_file() else None})
    images, left_out = gather_images([source], args.recursive) if source.is_dir() else \
        (read_labels(source, args.images, args.label_names).images, [])
    cache = build_cache(images, args.out, args.image_size, args.num_workers, progress=not args.quiet)
    if left_out:
        print(f"left out {len(left_out)} folder entries that are not images, e.g. {left_out[0][0]} ({left_out[0][1]})")
    size_gb = cache.pixels_file.stat().st_size / 1e9
    print(f"{len(cache.images)} images cached at {cache.size}x{cache.size} in {cache.folder} ({size_gb:.2f} GB); "
          f"{len(cache.bad)} unreadable. Train with --cache {cache.folder} --image-size {args.image_size}")
    return 0
