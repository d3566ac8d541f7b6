"""Decisions of the uint8 input pipeline against the old Pillow pipeline, on one run and one labelled split.

Run from the repository root:

    OMP_WAIT_POLICY=PASSIVE python bench/pipeline_agreement.py --run RUN --labels LABELS.csv \\
        [--split test] [--old-src /work/orig/src] [--new-src src] [--threads 2] [--runs-b RUN_B]

Predicts the split's images with `Predictor.from_run(RUN).predict_proba` twice, each
in a fresh process on the CPU: once with the old code (--old-src first on
PYTHONPATH: Pillow decoding, PIL transforms, float on the host) and once with this
code (the uint8 pipeline). Then prints, for each: macro F2 at the run's tuned
thresholds, and between them: the share of (image, label) decisions that agree,
the images whose decision changed, and the largest probability difference.
The issue's goal: >= 99.5% of decisions equal, macro F2 within 0.005.
With --runs-b RUN_B (a run trained with the new code on the same data) it also
prints RUN_B's macro F2 under the new code: "train gives the same decisions".
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from fashionstyle.core.metrics import macro_fbeta  # noqa: E402
WORKER = """
import sys, time, numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
from fashionstyle.data.labels.read import read_labels
from fashionstyle.inference.torch_predictor import Predictor
table = read_labels(sys.argv[2]).split(sys.argv[3])
predictor = Predictor.from_run(sys.argv[1], device="cpu")
start = time.perf_counter()
probs = predictor.predict_proba(table.images, batch_size=64, num_workers=0)
np.savez(sys.argv[5], probs=probs, targets=table.require_targets(), thresholds=predictor.thresholds,
         seconds=time.perf_counter() - start)
"""


def predict(run: Path, labels: Path, split: str, src: Path, threads: int, out: Path) -> dict:
    """Probabilities, targets and thresholds from a fresh process with `src` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(src), "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", WORKER, str(run), str(labels), split, str(threads), str(out)],
                   env=env, check=True)
    with np.load(out) as saved:
        return {k: saved[k] for k in saved.files}


def macro_f2(targets: np.ndarray, decisions: np.ndarray) -> float:
    return float(macro_fbeta(targets, decisions, 2.0))


def decisions(result: dict) -> np.ndarray:
    return (result["probs"] >= result["thresholds"]).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--old-src", type=Path, default=Path("/work/orig/src"))
    parser.add_argument("--new-src", type=Path, default=ROOT / "src")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-b", type=Path, default=None, help="a run trained with the new pipeline")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agreement_") as tmp:
        old = predict(args.run, args.labels, args.split, args.old_src, args.threads, Path(tmp) / "old.npz")
        new = predict(args.run, args.labels, args.split, args.new_src, args.threads, Path(tmp) / "new.npz")
        other = (predict(args.runs_b, args.labels, args.split, args.new_src, args.threads, Path(tmp) / "b.npz")
                 if args.runs_b else None)
    targets = old["targets"].astype(np.uint8)
    d_old, d_new = decisions(old), decisions(new)
    same = float((d_old == d_new).mean())
    changed_images = int((d_old != d_new).any(axis=1).sum())
    f2_old, f2_new = macro_f2(targets, d_old), macro_f2(targets, d_new)
    print(f"run {args.run}, {args.labels} split {args.split}: {len(targets)} images x {targets.shape[1]} labels; "
          f"{time.perf_counter() - start:.0f} s")
    print("| pipeline | macro F2 (tuned thresholds) | predict s |")
    print("|---|---|---|")
    print(f"| old: Pillow + PIL transforms ({args.old_src}) | {f2_old:.4f} | {float(old['seconds']):.1f} |")
    print(f"| new: uint8 pipeline ({args.new_src}) | {f2_new:.4f} | {float(new['seconds']):.1f} |")
    if other is not None:
        print(f"| new, run trained with it ({args.runs_b}) | {macro_f2(targets, decisions(other)):.4f} | "
              f"{float(other['seconds']):.1f} |")
        print(f"training: {float((decisions(other) == d_old).mean()):.4%} of (image, label) decisions of the run "
              f"trained with the new pipeline equal the old run's under the old code; |F2 difference| "
              f"{abs(macro_f2(targets, decisions(other)) - f2_old):.4f}")
    print(f"decisions equal: {same:.4%} of (image, label); images with any changed decision: {changed_images}; "
          f"max |p_new - p_old| {np.abs(new['probs'] - old['probs']).max():.2e}; "
          f"|F2 difference| {abs(f2_new - f2_old):.4f}")
    ok = same >= 0.995 and abs(f2_new - f2_old) <= 0.005
    print(f"goal (>= 99.5% equal, F2 within 0.005): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
