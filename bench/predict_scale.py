"""Catalogue-scale prediction on the CPU: peak memory and images/s as the list grows, streamed vs in memory.

    python bench/predict_scale.py [--sizes 10000 100000 1000000] [--baseline-sizes 10000 100000]

Makes a few hundred small JPEGs and a tiny run, writes lists of N entries that repeat
those files (ids unique), and times `fashionstyle predict --format parquet` (streamed
in chunks) on each, in a fresh process. The baseline, in the same script, is what a
user writes without streaming: Predictor.predict_proba over the whole list, then one
write. Prints peak RSS (MB) and images/s per N: streamed memory should stay flat.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--backbone", "test_resnet", "--no-pretrained", "--image-size", "32", "--epochs", "1", "--batch-size", "8",
        "--num-workers", "0", "--no-progress", "--lr-schedule", "constant", "--hidden", "32"]
BASELINE = """
import sys, numpy as np, pandas as pd
from fashionstyle import Predictor
from fashionstyle.data.images.source import ImageSource
run, listing, out = sys.argv[1:4]
rows = list(ImageSource.open(listing))               # the whole list in memory
predictor = Predictor.from_run(run, device="cpu")
probs = predictor.predict_proba([p for _, p in rows], batch_size=256, num_workers=int(sys.argv[4]))
frame = pd.DataFrame(probs, columns=predictor.label_names)
frame.insert(0, "id", [i for i, _ in rows])
frame.to_parquet(out)
"""


def make_data(folder: Path, images: int = 300) -> Path:
    """`images` small JPEGs and a label CSV for a tiny run."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True)
    lines = ["image,split,A,B"]
    for i in range(images):
        flags = rng.random(2) < 0.4
        pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        pixels[..., 0] = 255 if flags[0] else pixels[..., 0]
        Image.fromarray(pixels).save(folder / "img" / f"{i}.jpg", quality=85)
        lines.append(f"img/{i}.jpg,{['train', 'train', 'val'][i % 3]},{int(flags[0])},{int(flags[1])}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder / "labels.csv"


def write_list(path: Path, n: int, images: int, image_dir: Path) -> Path:
    with path.open("w") as f:
        f.write("id,image\n")
        for k in range(n):
            f.write(f"item{k},{image_dir / f'{k % images}.jpg'}\n")
    return path


def measured(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of `cmd` in a fresh process."""
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{result.stderr[-2000:]}")
    return time.perf_counter() - start, int(result.stdout.split()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--baseline-sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--num-workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="predict_scale_"))
    labels = make_data(work / "data")
    cli = [sys.executable, "-m", "fashionstyle.cli"]
    subprocess.run([*cli, "train", "--labels", str(labels), "--out", str(work / "run"), *TINY],
                   check=True, capture_output=True)
    print(f"{'N':>10} {'how':>10} {'seconds':>9} {'img/s':>9} {'peak RSS MB':>12}")
    for n in sorted(set(args.sizes) | set(args.baseline_sizes)):
        listing = write_list(work / f"list{n}.csv", n, 300, work / "data" / "img")
        runs = []
        if n in args.sizes:
            runs.append(("streamed", [*cli, "predict", str(work / "run"), "--images", str(listing), "--out",
                                      str(work / f"out{n}.parquet"), "--format", "parquet", "--batch-size", "256",
                                      "--chunk-size", str(args.chunk_size), "--num-workers",
                                      str(args.num_workers), "--quiet", "--accelerator", "cpu"]))
        if n in args.baseline_sizes:
            runs.append(("in memory", [sys.executable, "-c", BASELINE, str(work / "run"), str(listing),
                                       str(work / f"base{n}.parquet"), str(args.num_workers)]))
        for how, cmd in runs:
            seconds, rss = measured(cmd)
            print(f"{n:>10,} {how:>10} {seconds:>9.1f} {n / seconds:>9.0f} {rss:>12.0f}", flush=True)
        listing.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
