"""Per-label decision thresholds that maximise F-beta on validation data.

A label is predicted positive when its score is >= its threshold. The search
is exact: every distinct score is a candidate, found in O(N log N) with one
sort and cumulative counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from fashionstyle.core.choices import DEFAULT_RULE, THRESHOLD_RULES
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.metrics import as_binary, check_beta, check_label_pair, fbeta_from_counts

__all__ = ["ThresholdTuner", "best_threshold", "fbeta_curve", "rule_threshold"]

# How a label's threshold is chosen from its validation scores:
#   exact      the argmax of F-beta over every distinct score (best_threshold)
#   smooth     the argmax of the F-beta curve averaged over +-SMOOTH_WIDTH
#   bootstrap  the argmax of the F-beta curve averaged over BOOTSTRAP_SAMPLES resamples of the rows
#   pooled     among the thresholds whose smooth F-beta is within NEAR_BEST of the label's best, the
#              argmax of its smooth curve pulled toward the mean smooth curve of all labels (weight
#              POOL_STRENGTH / (POOL_STRENGTH + the label's positives)); both chosen by split-half
#              cross-validation on val (docs/results.md, "Threshold rules")
SMOOTH_WIDTH = 0.05
BOOTSTRAP_SAMPLES = 200
POOL_STRENGTH = 100.0
NEAR_BEST = 0.02
_GRID = np.linspace(0.0, 1.0, 1001).round(3)  # 0.288 in files and answers, not 0.28800000000000003

# F-beta values closer than this to the maximum count as ties.
TIE_TOL = 1e-12


def _check_scores_targets(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate 1-D scores and 0/1 targets of equal length; return (float64, bool)."""
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.ndim != 1 or targets.ndim != 1 or scores.shape != targets.shape:
        raise FashionStyleError(
            "scores and targets must be 1-D arrays of the same length, "
            f"got shapes {scores.shape} and {targets.shape}"
        )
    scores = scores.astype(np.float64)
    if not np.isfinite(scores).all():
        raise FashionStyleError("scores must be finite (found nan or inf)")
    return scores, as_binary(targets, "targets")


def best_threshold(
    scores: np.ndarray, targets: np.ndarray, beta: float = 2.0, default: float = 0.5
) -> tuple[float, float]:
    """Threshold maximising F-beta of ``scores >= threshold`` against targets.

    Returns (threshold, F-beta reached at it). When several thresholds give
    the best F (within ``TIE_TOL``), the threshold is the midpoint of the
    widest interval of equally good thresholds, not its edge. The interval
    below the lowest score is bounded by 0.0 (or by ``min - 1`` for negative
    scores). With no positive target the label cannot be tuned and
    ``(default, nan)`` is returned.
    """
    scores, y = _check_scores_targets(scores, targets)
    beta = check_beta(beta)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float(default), math.nan

    order = np.argsort(-scores, kind="stable")
    s_desc, y_desc = scores[order], y[order]
    tp = np.cumsum(y_desc)
    fp = np.arange(1, len(y_desc) + 1) - tp
    # Last index of each tie group: predicting ">= u" takes the whole group.
    last = np.flatnonzero(np.append(s_desc[1:] != s_desc[:-1], True))
    u = s_desc[last]  # distinct scores, descending
    f = fbeta_from_counts(tp[last], fp[last], n_pos - tp[last], beta)

    # Runs of consecutive distinct scores whose F ties with the maximum.
    good = f >= f.max() - TIE_TOL
    starts = np.flatnonzero(good & ~np.insert(good[:-1], 0, False))
    ends = np.flatnonzero(good & ~np.append(good[1:], False))
    # Run a..b holds for any threshold in (u[b+1], u[a]].
    floor = 0.0 if u[-1] >= 0 else u[-1] - 1.0
    lows = np.append(u[1:], floor)[ends]
    highs = u[starts]
    k = int(np.argmax(highs - lows))  # widest run; first (highest) on ties
    t = 0.5 * highs[k] + 0.5 * lows[k]
    if not t > lows[k]:  # empty interval (lowest score 0.0) or adjacent floats
        t = highs[k]
    j = int(np.count_nonzero(u >= t)) - 1  # distinct score whose predictions t gives
    return float(t), float(f[j])


def fbeta_curve(
    scores: np.ndarray,
    targets: np.ndarray,
    beta: float = 2.0,
    grid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """F-beta of ``scores >= t`` for each t in grid (default 201 points in [0, 1]).

    Returns (grid, fbeta). Meant for plots; a label without positives gives 0.
    """
    scores, y = _check_scores_targets(scores, targets)
    grid = np.linspace(0.0, 1.0, 201) if grid is None else np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1:
        raise FashionStyleError(f"grid must be 1-D, got shape {grid.shape}")
    n_pos = int(y.sum())
    # Count of scores >= t is N minus the count strictly below t.
    n_pred = len(scores) - np.searchsorted(np.sort(scores), grid, side="left")
    tp = n_pos - np.searchsorted(np.sort(scores[y]), grid, side="left")
    return grid, fbeta_from_counts(tp, n_pred - tp, n_pos - tp, beta)


def rule_threshold(scores: np.ndarray, targets: np.ndarray, beta: float = 2.0, default: float = 0.5,
                   rule: str = DEFAULT_RULE, seed: int = 0) -> tuple[float, float]:
    """(threshold, F-beta on these scores at it) of one label chosen by `rule` (see choices.THRESHOLD_RULES);
    the pooled rule, alone with one label, is the smooth one."""
    scores, targets = _check_scores_targets(scores, targets)
    tuner = ThresholdTuner(beta, default, rule, seed).fit(scores[:, None], targets[:, None])
    return float(tuner.thresholds_[0]), float(tuner.best_fbeta_[0])


@THRESHOLD_RULES.implements("smooth")
def smoothed_curves(probs: np.ndarray, y: np.ndarray, beta: float, seed: int) -> np.ndarray:
    """(L, grid) each label's F-beta curve averaged over +-SMOOTH_WIDTH (the smooth rule)."""
    return np.array([_moving_average(fbeta_curve(probs[:, j], y[:, j], beta, _GRID)[1], SMOOTH_WIDTH)
                     for j in range(probs.shape[1])])


@THRESHOLD_RULES.implements("bootstrap")
def bootstrap_curves(probs: np.ndarray, y: np.ndarray, beta: float, seed: int) -> np.ndarray:
    """(L, grid) each label's F-beta curve averaged over BOOTSTRAP_SAMPLES resamples of the rows (the bootstrap
    rule)."""
    rows = np.random.default_rng(seed).integers(0, len(y), (BOOTSTRAP_SAMPLES, len(y)))
    return np.array([np.mean([fbeta_curve(probs[r, j], y[r, j], beta, _GRID)[1] for r in rows], axis=0)
                     for j in range(probs.shape[1])])


@THRESHOLD_RULES.implements("pooled")
def pooled_curves(probs: np.ndarray, y: np.ndarray, beta: float, seed: int) -> np.ndarray:
    """(L, grid) the pooled rule's curves: where a label's own smoothed F-beta is within NEAR_BEST of its best,
    that curve pulled toward the mean smoothed curve of the labels with positives, by
    POOL_STRENGTH / (POOL_STRENGTH + its positives); -1 elsewhere. A rare label's few positives decide little
    of where its threshold sits among its near-best ones, a common label's most of it; and no label leaves
    the thresholds its own validation scores support."""
    curves = smoothed_curves(probs, y, beta, seed)
    positives = y.sum(axis=0)
    mean = curves[positives > 0].mean(axis=0)
    own = (positives / (positives + POOL_STRENGTH))[:, None]
    near_best = curves >= curves.max(axis=1, keepdims=True) - NEAR_BEST
    return np.where(near_best, own * curves + (1 - own) * mean, -1.0)


def _moving_average(values: np.ndarray, width: float) -> np.ndarray:
    """Mean over +-width (in threshold units) around each grid point, shrinking at the ends."""
    half = int(round(width / (_GRID[1] - _GRID[0])))
    kernel = np.ones(2 * half + 1)
    return np.convolve(values, kernel, "same") / np.convolve(np.ones_like(values), kernel, "same")


class ThresholdTuner:
    """Per-label F-beta threshold tuner with a scikit-learn-like interface.

    After ``fit``: ``thresholds_`` (L,), ``best_fbeta_`` (L,, nan for labels
    without positives) and ``tuned_`` (L,, bool). Untuned labels use ``default``.
    """

    def __init__(self, beta: float = 2.0, default: float = 0.5, rule: str = DEFAULT_RULE, seed: int = 0) -> None:
        self.beta = beta
        self.default = default
        self.rule = rule
        self.seed = seed

    def fit(self, probs: np.ndarray, targets: np.ndarray) -> ThresholdTuner:
        """Tune one threshold per label on (N, L) scores and 0/1 targets, by the rule."""
        curves_of = THRESHOLD_RULES.implementation(self.rule)  # None: exact, no curve of its own
        probs, targets = check_label_pair(probs, targets, ("probs", "targets"))
        found = [best_threshold(probs[:, j], targets[:, j], self.beta, self.default) for j in range(probs.shape[1])]
        self.thresholds_ = np.array([t for t, _ in found], dtype=np.float64)
        self.best_fbeta_ = np.array([f for _, f in found], dtype=np.float64)
        self.tuned_ = ~np.isnan(self.best_fbeta_)
        if curves_of and (probs.min(initial=0.0) < 0.0 or probs.max(initial=1.0) > 1.0):
            raise FashionStyleError(f"threshold rule {self.rule} searches [0, 1]: it needs probabilities, got "
                                    f"scores in [{probs.min():g}, {probs.max():g}]; use rule 'exact' for other scores")
        if curves_of and self.tuned_.any():
            self._from_curves(curves_of, probs.astype(np.float64), as_binary(targets, "targets"))
        return self

    def _from_curves(self, curves_of: Any, probs: np.ndarray, y: np.ndarray) -> None:
        """Each tuned label's threshold: the grid point where the rule's F-beta curve (L, grid) peaks."""
        curves = curves_of(probs, y, self.beta, self.seed)
        for j in np.flatnonzero(self.tuned_):
            t = float(_GRID[int(np.argmax(curves[j]))])
            self.thresholds_[j] = t
            self.best_fbeta_[j] = fbeta_curve(probs[:, j], y[:, j], self.beta, np.array([t]))[1][0]

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """0/1 (uint8) predictions of shape (N, L): each label at its threshold, as the run's own point."""
        self._check_fitted()
        return OperatingPoint.of_tuner(self).decide(probs)  # the one decide (core/decision.py)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: plain floats, bools and lists; nan becomes None."""
        self._check_fitted()
        return {
            "beta": float(self.beta),
            "default": float(self.default),
            "rule": self.rule,
            "thresholds": [float(t) for t in self.thresholds_],
            "best_fbeta": [None if math.isnan(f) else float(f) for f in self.best_fbeta_],
            "tuned": [bool(x) for x in self.tuned_],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "threshold dict") -> ThresholdTuner:
        """Rebuild a fitted tuner from ``to_dict`` output; `source` (a file name) is named in the
        one-line error a bad value gives (thresholds must be finite and in [0, 1])."""
        if not isinstance(d, Mapping):
            raise FashionStyleError(f"{source}: expected a mapping of beta, default, thresholds, "
                                    f"best_fbeta and tuned, got {type(d).__name__}")
        keys = ("beta", "default", "thresholds", "best_fbeta", "tuned")
        missing = [k for k in keys if k not in d]
        if missing:
            raise FashionStyleError(f"{source}: threshold dict is missing keys: {missing}")
        for key in ("thresholds", "best_fbeta", "tuned"):
            if not isinstance(d[key], list):
                raise FashionStyleError(f"{source}: {key} must be a list, got {d[key]!r}")
        n = len(d["thresholds"])
        if len(d["best_fbeta"]) != n or len(d["tuned"]) != n:
            raise FashionStyleError(
                f"{source}: thresholds, best_fbeta and tuned must have the same length, got "
                f"{n}, {len(d['best_fbeta'])} and {len(d['tuned'])}"
            )
        rule = d.get("rule", "exact")  # before rules
        if rule not in THRESHOLD_RULES.names:
            raise FashionStyleError(f"{source}: rule: unknown value {rule!r}; valid: {', '.join(THRESHOLD_RULES.names)}")
        tuner = cls(beta=_number(d["beta"], f"{source}: beta", low=0.0, open_low=True),
                    default=_number(d["default"], f"{source}: default"), rule=rule)
        tuner.thresholds_ = np.array([_number(t, f"{source}: thresholds[{j}]") for j, t in enumerate(d["thresholds"])],
                                     dtype=np.float64)
        tuner.best_fbeta_ = np.array([math.nan if f is None else _number(f, f"{source}: best_fbeta[{j}]")
                                      for j, f in enumerate(d["best_fbeta"])], dtype=np.float64)
        if not all(isinstance(t, bool) for t in d["tuned"]):
            raise FashionStyleError(f"{source}: tuned must be a list of true/false, got {d['tuned']!r}")
        tuner.tuned_ = np.array(d["tuned"], dtype=bool)
        return tuner

    def _check_fitted(self) -> None:
        """Raise FashionStyleError if fit() has not run."""
        if not hasattr(self, "thresholds_"):
            raise FashionStyleError("ThresholdTuner is not fitted; call fit() first")


def _number(value: Any, where: str, low: float = 0.0, high: float = 1.0, open_low: bool = False) -> float:
    """`value` as a float, or a one-line refusal naming `where`: a finite number in [low, high]
    ((low, inf) with open_low, as beta's)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if open_low:
        ok = ok and value > low
        valid = f"a finite number > {low:g}"
    else:
        ok = ok and low <= value <= high
        valid = f"a number in [{low:g}, {high:g}]"
    if not ok:
        raise FashionStyleError(f"{where} must be {valid}, got {value!r}")
    return float(value)
