"""`fashionstyle predict RUN --images PHOTOS --out FILE`: the prediction records of many photos, streamed."""
from __future__ import annotations

import argparse

from fashionstyle.cli.args import (add_decode_arg, add_loader_args, add_placement_args, add_recursive_arg, add_run_arg,
                                   add_operating_point_arg, add_tta_arg, int_in)
from fashionstyle.cli.settings import loader_settings, placement, predict_settings
from fashionstyle.core.choices import OUTPUT_FORMATS, RUNTIMES

ABOUT = "predict styles for a folder or a list of images"
EXAMPLE = ("fashionstyle predict runs/lite0 --images photos/ --out tags.csv\n"
           "fashionstyle predict runs/lite0 --images catalogue.csv --out tags.parquet --resume")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help=ABOUT)
    add_run_arg(p)
    p.add_argument("--images", required=True, help="a folder of images, one image, or a list (JD id,url / CSV)")
    p.add_argument("--image-dir", default=None, help="where a list's images are (default: its folder)")
    add_recursive_arg(p)
    p.add_argument("--out", required=True,
                   help="output file (.csv, .json, .parquet; .txt or no extension: jd; .csv.gz, .json.gz: gzip)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out that is not an earlier prediction file")
    p.add_argument("--format", choices=OUTPUT_FORMATS, default=None,
                   help=f"{OUTPUT_FORMATS.help()} (default: from --out's extension, "
                        f"{', '.join(c.value for c in OUTPUT_FORMATS.values())}; jd without one; others refused)")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch", help=f"{RUNTIMES.help()} (default: torch)")
    add_decode_arg(p)
    add_tta_arg(p)
    add_operating_point_arg(p)
    add_loader_args(p)
    p.add_argument("--chunk-size", type=int_in(1), default=10_000,
                   help="images per part file: the output is written chunk by chunk into OUT.parts/, then "
                        "merged (default: 10000)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed prediction after its last complete chunk (same settings)")
    add_placement_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.core.overwrite import refuse_overwriting_inputs, run_inputs
    from fashionstyle.core.run import RunDir
    from fashionstyle.data.images.source import ImageSource
    from fashionstyle.inference.jobs import predict_job
    from fashionstyle.inference.outputs import output_format
    from fashionstyle.inference.prediction_files import check_out

    run_dir = RunDir.open(args.run)
    fmt = output_format(args.out, args.format)
    refuse_overwriting_inputs({"--out": [args.out, f"{args.out}.skipped.txt"]},
                              {"--images": args.images, "--image-dir": args.image_dir, "run": run_inputs(run_dir)})
    check_out(args.out, args.overwrite)  # before a long list is counted (predict_job checks again)
    source = ImageSource.open(args.images, args.image_dir, args.recursive)
    done = predict_job(run_dir, source, args.out, fmt, predict_settings(args), loader_settings(args), args.resume,
                       placement(args), overwrite=args.overwrite)
    if done is None:
        return 0  # rank 0 merges and reports
    print(f"{done.kept} predictions ({fmt}) written to {done.path}")
    in_file = "" if fmt == "jd" else " (rows without scores, the reason as their error)"
    left = [f"{n} {what}" for n, what in ((done.unreadable, ("unreadable image" if done.unreadable == 1
                                           else "unreadable images") + in_file),
                                          (done.left_out, "folder entry that is not an image" if done.left_out == 1
                                           else "folder entries that are not images")) if n]
    if left:
        print(f"left out {' and '.join(left)}, listed with the reason in {done.path}.skipped.txt")
    return 0
