"""Prediction speed of whole runs on the same photos: a fused teacher against its distilled student.

    python bench/run_speed.py runs/student runs/fused3_flip --images ../shared/data/garments/images \\
        [--n 400] [--rounds 3] [--batch-size 64] [--device cpu]

Each run predicts as `fashionstyle predict` does (every member model, the TTA its thresholds were
tuned with), on the first --n images of the folder, in this one process; rounds alternate between
the runs and each run's best round counts (start-up apart). Prints images/s, forward passes per
photo (members x TTA views) and each run's speed over the first run's.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from fashionstyle.core.choices import TTA_MODES  # noqa: E402
from fashionstyle.data.images.files import list_images  # noqa: E402
from fashionstyle.inference.torch_predictor import Predictor  # noqa: E402

def images_per_second(predictor: Predictor, images: list[Path], batch_size: int) -> float:
    start = time.perf_counter()
    predictor.predict_proba(images, batch_size=batch_size)
    return len(images) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    images = list_images(args.images)[:args.n]
    predictors = {run: Predictor.from_run(run, device=args.device) for run in args.runs}
    best = dict.fromkeys(args.runs, 0.0)
    for _ in range(args.rounds):
        for run, predictor in predictors.items():
            best[run] = max(best[run], images_per_second(predictor, images, args.batch_size))
    first = best[args.runs[0]]
    print(f"{len(images)} photos from {args.images}, device {args.device}, batch {args.batch_size}, "
          f"best of {args.rounds} alternating rounds\n")
    print("| run | members x views | images/s | vs the first |\n|---|---|---|---|")
    for run, predictor in predictors.items():
        passes = f"{len(predictor.members)} x {TTA_MODES[predictor.tta].value}"
        print(f"| {run.name} | {passes} | {best[run]:.1f} | {best[run] / first:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
