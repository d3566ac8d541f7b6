"""Exact per-label threshold search vs a 101-point grid search with scikit-learn.

Run from the repository root:

    PYTHONPATH=src python bench/threshold_speed.py [--n 100000] [--labels 13]

On random imbalanced targets with correlated scores, times
``ThresholdTuner.fit`` against a grid search calling
``sklearn.metrics.fbeta_score(beta=2)`` for each of 101 thresholds and each
label. Prints both timings and macro best F2, the speed ratio, and whether the
exact search's F2 is >= the grid's for every label. Exits 1 if the ratio is
below 10 or any label's exact F2 is below the grid's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import fbeta_score

try:
    from fashionstyle.core.thresholds import ThresholdTuner
except ImportError:  # run without PYTHONPATH=src or an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from fashionstyle.core.thresholds import ThresholdTuner

BETA = 2.0
MIN_RATIO = 10.0
TOL = 1e-12  # sklearn's F (from P and R) may differ from the count formula by rounding


def make_data(n: int, n_labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Imbalanced 0/1 targets (2-30 % positive) and scores in [0, 1] that track them."""
    rng = np.random.default_rng(seed)
    prevalence = rng.uniform(0.02, 0.30, n_labels)
    targets = (rng.random((n, n_labels)) < prevalence).astype(np.int64)
    targets[0] = 1  # every label has at least one positive
    logits = rng.normal(size=(n, n_labels)) + 2.0 * targets - 1.5
    return 1.0 / (1.0 + np.exp(-logits)), targets


def grid_search(probs: np.ndarray, targets: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Best sklearn F2 per label over the grid of thresholds."""
    best = np.zeros(probs.shape[1])
    for j in range(probs.shape[1]):
        for t in grid:
            f = fbeta_score(targets[:, j], probs[:, j] >= t, beta=BETA, zero_division=0)
            best[j] = max(best[j], f)
    return best


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 on success, 1 if a check fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of images")
    parser.add_argument("--labels", type=int, default=13, help="number of labels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    probs, targets = make_data(args.n, args.labels, args.seed)

    start = time.perf_counter()
    tuner = ThresholdTuner(beta=BETA, rule="exact").fit(probs, targets)
    exact_s = time.perf_counter() - start

    start = time.perf_counter()
    grid_f = grid_search(probs, targets, np.linspace(0.0, 1.0, 101))
    grid_s = time.perf_counter() - start

    # Re-score the tuned thresholds with sklearn: an independent check of the F reached.
    pred = tuner.predict(probs)
    exact_f = fbeta_score(targets, pred, beta=BETA, average=None, zero_division=0)
    ratio = grid_s / max(exact_s, 1e-9)
    all_ge = bool(np.all(exact_f >= grid_f - TOL))

    print(f"{args.n} images x {args.labels} labels, F{BETA:g}")
    print(f"{'method':<28}{'seconds':>10}{'macro best F2':>15}")
    print(f"{'exact (ThresholdTuner.fit)':<28}{exact_s:>10.3f}{exact_f.mean():>15.4f}")
    print(f"{'grid 101 x sklearn':<28}{grid_s:>10.3f}{grid_f.mean():>15.4f}")
    print(f"speed ratio (grid / exact): {ratio:.1f}x")
    print(f"exact F2 >= grid F2 for every label: {'yes' if all_ge else 'NO'}")
    if not all_ge:
        print(f"labels below grid: {np.flatnonzero(exact_f < grid_f - TOL).tolist()}")
    return 0 if ratio >= MIN_RATIO and all_ge else 1


if __name__ == "__main__":
    sys.exit(main())
