"""`fashionstyle download LIST --out FOLDER`: fetch the images of a JD id,url list."""
from __future__ import annotations

import argparse
from pathlib import Path

from fashionstyle.cli.args import int_in

ABOUT = "fetch the images of a JD id,url list"
EXAMPLE = "fashionstyle download test.txt --out images/"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("download", help=ABOUT)
    p.add_argument("list", help="JD id,url list (train or test file)")
    p.add_argument("--out", required=True, help="image folder (<id>.jpg); images already there are skipped, so a "
                   "second run resumes; failures go to download_failures.csv")
    p.add_argument("--num-workers", type=int_in(1), default=16, help="parallel downloads (default: 16)")
    p.add_argument("--retries", type=int_in(0), default=4,
                   help="retries of a transient failure, with backoff (default: 4)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds for one attempt at one file, connecting and reading the whole body, so a stalled "
                        "or trickling server is cut off; a file takes at most (retries + 1) x timeout plus backoff "
                        "(default: 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from fashionstyle.core.overwrite import refuse_overwriting_inputs
    from fashionstyle.data.download.fetch import FAILURES_CSV, download_images, format_summary
    from fashionstyle.data.download.url_list import read_url_list

    refuse_overwriting_inputs({"--out": [args.out, Path(args.out) / FAILURES_CSV]}, {"list": args.list})
    summary = download_images(read_url_list(args.list), args.out, workers=args.num_workers,
                              retries=args.retries, timeout=args.timeout, progress=not args.quiet)
    print(format_summary(summary))
    return 1 if summary.failed else 0
