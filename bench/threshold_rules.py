"""Threshold rules compared on stored runs: tune on val probabilities, score test once per rule.

    python bench/threshold_rules.py RUN [RUN ...] [--beta 2]

RUN is a run directory with val_probs.npz and eval_test.npz (`fashionstyle evaluate RUN
--split test`), or an .npz of bench/plain_loop.py --probs (keys val, val_targets, test,
test_targets). Prints test macro F-beta per run and rule, and each rule's mean and
worst difference from `exact`. A rule becomes the default only if it wins on average
over at least 6 runs and never loses more than 0.005.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from fashionstyle.core.metrics import macro_fbeta  # noqa: E402
from fashionstyle.core.run import RunDir  # noqa: E402
from fashionstyle.core.choices import THRESHOLD_RULES  # noqa: E402
from fashionstyle.core.thresholds import ThresholdTuner  # noqa: E402
RULES = THRESHOLD_RULES.names

MIN_RUNS, MAX_LOSS = 6, 0.005


def stored_probs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(val probs, val targets, test probs, test targets) of a run directory or a plain-loop .npz."""
    if path.suffix == ".npz":
        data = np.load(path)
        return data["val"], data["val_targets"], data["test"], data["test_targets"]
    _, val, val_targets = RunDir.open(path).val_probs()
    test = np.load(path / "eval_test.npz")
    return val, val_targets, test["probs"], test["targets"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--beta", type=float, default=2.0)
    args = parser.parse_args()
    table = {}
    for path in args.runs:
        val, val_targets, test, test_targets = stored_probs(path)
        table[str(path)] = {rule: macro_fbeta(test_targets, ThresholdTuner(args.beta, rule=rule).fit(
            val, val_targets).predict(test), args.beta) for rule in RULES}
    width = max(len(name) for name in table)
    print(f"{'run':<{width}} | " + " | ".join(f"{r:>9}" for r in RULES))
    for name, scores in table.items():
        print(f"{name:<{width}} | " + " | ".join(f"{scores[r]:9.4f}" for r in RULES))
    for rule in RULES[1:]:
        delta = np.array([s[rule] - s["exact"] for s in table.values()])
        verdict = len(delta) >= MIN_RUNS and delta.mean() > 0 and delta.min() >= -MAX_LOSS
        print(f"{rule}: mean {delta.mean():+.4f}, worst {delta.min():+.4f} over {len(delta)} runs -> "
              f"{'qualifies as default' if verdict else 'stays opt-in'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
