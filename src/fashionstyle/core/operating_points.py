"""Choosing an operating point's thresholds on validation data, with a confidence bound where support is small.

    point = fit_point("storefront", val_probs, val_targets, label_names, "min-precision", 0.9,
                      max_labels=3, exclusive=[["T-Shirt", "Longsleeve", "Polo", "Shirt"]])

Objectives, per label:
    fbeta B          the run's threshold rule for F-beta at B (ThresholdTuner)
    min-precision P  the threshold with the highest recall whose precision's lower confidence bound is
                     at least P; none such: the label is never predicted at this point
    min-recall R     the threshold with the highest precision whose recall's lower bound is at least R
The bound is the lower end of the two-sided 90% Wilson score interval (Z = 1.645): 5 of 5 positives
correct bound precision at 0.65, not 1.0, so a label with little support cannot claim a floor it has
not shown. Each label's validation precision, its bound and recall at the chosen threshold are kept
in the point (`val`), for evaluate, the report and the card.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fashionstyle.core.decision import OperatingPoint, check_groups, check_max_labels, check_target
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.metrics import per_label_scores
from fashionstyle.core.thresholds import ThresholdTuner

Z = 1.6449  # two-sided 90% normal quantile
LABELLING = "labelling"  # the point pre-annotations are decided at: the run's own of that name, else ...
LABELLING_RULE = {"objective": "min-precision", "target": 0.8, "max_labels": 3}  # ... this, fitted on val


def wilson_lower(successes: np.ndarray, trials: np.ndarray, z: float = Z) -> np.ndarray:
    """Lower end of the Wilson score interval of successes / trials (0 where trials is 0)."""
    k, n = np.asarray(successes, np.float64), np.asarray(trials, np.float64)
    safe = np.maximum(n, 1.0)
    p = k / safe
    centre = p + z * z / (2 * safe)
    spread = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    return np.where(n > 0, (centre - spread) / (1 + z * z / safe), 0.0)


def _cuts(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each distinct score from the highest down: (threshold, true positives, predicted) when
    predicting `scores >= threshold`; the threshold sits halfway to the next lower score."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], targets[order].astype(np.float64)
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))  # the last row of each run of equal scores
    below = np.append(s[last[:-1] + 1], -np.inf)
    thresholds = np.where(np.isfinite(below), (s[last] + below) / 2, s[last])
    return thresholds, np.cumsum(y)[last], last + 1.0


def floor_threshold(scores: np.ndarray, targets: np.ndarray, objective: str, floor: float) -> float:
    """One label's threshold for a min-precision or min-recall floor; inf when no threshold reaches it."""
    positives = float(targets.sum())
    if positives == 0 or len(scores) == 0:
        return math.inf
    thresholds, tp, predicted = _cuts(scores, targets)
    if objective == "min-precision":
        ok = np.flatnonzero(wilson_lower(tp, predicted) >= floor)
        return float(thresholds[ok[np.argmax(tp[ok])]]) if len(ok) else math.inf  # the first cut of the best recall
    ok = np.flatnonzero(wilson_lower(tp, np.full_like(tp, positives)) >= floor)
    return float(thresholds[ok[0]]) if len(ok) else math.inf  # the highest threshold: the fewest predicted


def val_figures(probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray) -> dict[str, list]:
    """Per label at its threshold: support, precision, its 90% lower bound, recall (None where undefined)."""
    on = probs >= thresholds[None, :]
    tp = (on & (targets == 1)).sum(axis=0)
    predicted, positives = on.sum(axis=0), targets.sum(axis=0)
    low = wilson_lower(tp, predicted)
    return {"support": [int(p) for p in positives],
            "precision": [round(float(t / n), 4) if n else None for t, n in zip(tp, predicted)],
            "precision_low": [round(float(b), 4) if n else None for b, n in zip(low, predicted)],
            "recall": [round(float(t / p), 4) if p else None for t, p in zip(tp, positives)]}


def fit_point(name: str, probs: np.ndarray, targets: np.ndarray, label_names: Sequence[str],
              objective: str = "fbeta", target: float = 2.0, max_labels: int | None = None,
              exclusive: Sequence[Sequence[str]] = (), at_least_one: bool = False,
              rule: str | None = None) -> OperatingPoint:
    """A named point whose thresholds meet `objective` at `target` on (N, L) validation data."""
    where = f"operating point {name!r}"
    check_name(name)
    if objective not in ("fbeta", "min-precision", "min-recall"):
        raise FashionStyleError(f"{where}: objective {objective!r}; valid: fbeta, min-precision, min-recall")
    target = check_target(objective, target, where)
    groups = check_groups(exclusive, label_names, where)
    max_labels = check_max_labels(max_labels, where)
    probs, targets = np.asarray(probs, np.float64), np.asarray(targets).astype(np.int64)
    if objective == "fbeta":
        tuner = ThresholdTuner(beta=target, **({"rule": rule} if rule else {})).fit(probs, targets)
        thresholds = tuner.thresholds_.astype(np.float64)
    else:
        thresholds = np.array([floor_threshold(probs[:, j], targets[:, j], objective, target)
                               for j in range(probs.shape[1])])
    return OperatingPoint(name, thresholds, objective, target, max_labels, groups, at_least_one,
                          val_figures(probs, targets, thresholds))


def check_name(name: str) -> str:
    """A point's name: letters, digits, '-', '_' and '.', starting with a letter or digit."""
    if not name or not (name[0].isalnum() and all(c.isalnum() or c in "-_." for c in name)):
        raise FashionStyleError(f"operating point name {name!r}: use letters, digits, '-', '_' and '.' "
                                "(e.g. storefront)")
    return name


def point_scores(point: OperatingPoint, probs: np.ndarray, targets: np.ndarray, beta: float) -> dict[str, Any]:
    """Per-label precision, recall, F-beta and labels per photo of a split decided at `point`, beside each
    label's validation precision and its 90% lower bound (as the point was chosen)."""
    decided = point.decide(probs)
    scores = per_label_scores(targets, decided, beta)
    per_photo = decided.sum(axis=1)
    thresholds = [float(t) if np.isfinite(t) else None for t in point.thresholds]
    return {"name": point.name, "beta": beta, "thresholds": thresholds,
            "predicted": decided.sum(axis=0).tolist(),
            **{k: scores[k].tolist() for k in ("precision", "recall", "fbeta")},
            "val_precision": point.val.get("precision"), "val_precision_low": point.val.get("precision_low"),
            "labels_per_photo": {"mean": float(per_photo.mean()) if len(per_photo) else 0.0,
                                 "max": int(per_photo.max(initial=0)),
                                 "histogram": np.bincount(per_photo).tolist()}}


def labelling_point(points: dict[str, OperatingPoint], own: OperatingPoint, label_names: Sequence[str],
                    val: tuple[np.ndarray, np.ndarray] | None) -> OperatingPoint:
    """The point Label Studio pre-annotations (suggest's tasks and hints, the ML backend) are decided at when
    none is named: the run's point named `labelling`, else LABELLING_RULE fitted on the validation (probs,
    targets) `val`, else (no validation probabilities kept) the run's own thresholds, at most 3 labels."""
    if LABELLING in points:
        return points[LABELLING]
    if val is None:
        return OperatingPoint(LABELLING, own.thresholds, own.objective, own.target, LABELLING_RULE["max_labels"])
    return fit_point(LABELLING, val[0], val[1], label_names, **LABELLING_RULE)
