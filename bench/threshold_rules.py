"""Threshold rules compared on stored runs: chosen by split-half cross-validation on val, test reported once.

    python bench/threshold_rules.py RUN [RUN ...] [--beta 2] [--splits 30]

RUN is a run directory with val_probs.npz and eval_test.npz (`fashionstyle evaluate RUN
--split test`), or an .npz of bench/plain_loop.py --probs (keys val, val_targets, test,
test_targets). Per run and rule: the val score (tune on one random half of val, score the
other half, both ways, averaged over --splits draws) and the test score (tuned on all of
val). A rule qualifies as the default only on val: it wins on average over at least 6 runs
and never loses more than 0.005 to `exact`; test is printed for the report, not the choice.
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


def tuned_score(rule: str, beta: float, tune: tuple[np.ndarray, np.ndarray], score: tuple[np.ndarray, np.ndarray]
                ) -> float:
    """Macro F-beta on `score` (probs, targets) at the thresholds `rule` tunes on `tune`."""
    tuner = ThresholdTuner(beta, rule=rule).fit(*tune)
    return macro_fbeta(score[1], tuner.predict(score[0]), beta)


def split_half_score(rule: str, beta: float, probs: np.ndarray, targets: np.ndarray, splits: int) -> float:
    """Mean held-out macro F-beta: tune on a random half of the rows, score the other half, both ways."""
    rng = np.random.default_rng(0)
    scores = []
    for _ in range(splits):
        order = rng.permutation(len(probs))
        a, b = order[: len(order) // 2], order[len(order) // 2:]
        for tune, held in ((a, b), (b, a)):
            scores.append(tuned_score(rule, beta, (probs[tune], targets[tune]), (probs[held], targets[held])))
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--beta", type=float, default=2.0)
    parser.add_argument("--splits", type=int, default=30, help="random halvings of val per run (default: 30)")
    args = parser.parse_args(argv)
    val_cv, test = {}, {}
    for path in args.runs:
        val, val_targets, test_probs, test_targets = stored_probs(path)
        val_cv[str(path)] = {rule: split_half_score(rule, args.beta, val, val_targets, args.splits) for rule in RULES}
        test[str(path)] = {rule: tuned_score(rule, args.beta, (val, val_targets), (test_probs, test_targets))
                           for rule in RULES}
    width = max(len(name) for name in val_cv)
    print(f"{'run':<{width}} | " + " | ".join(f"{r + ' val/test':>18}" for r in RULES))
    for name in val_cv:
        print(f"{name:<{width}} | " + " | ".join(f"{val_cv[name][r]:9.4f}{test[name][r]:9.4f}" for r in RULES))
    for rule in RULES[1:]:
        on_val = np.array([s[rule] - s["exact"] for s in val_cv.values()])
        on_test = np.array([s[rule] - s["exact"] for s in test.values()])
        verdict = len(on_val) >= MIN_RUNS and on_val.mean() > 0 and on_val.min() >= -MAX_LOSS
        print(f"{rule}: val (split halves) mean {on_val.mean():+.4f}, worst {on_val.min():+.4f}; test mean "
              f"{on_test.mean():+.4f}, worst {on_test.min():+.4f}; over {len(on_val)} runs -> "
              f"{'qualifies as default' if verdict else 'stays opt-in'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
