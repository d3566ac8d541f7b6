"""Per-label multi-label metrics (precision, recall, F-beta) and a text table.

Scores are computed per label over images; the macro score is the plain mean
over labels. Undefined ratios (0/0) are 0, like scikit-learn's
``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fashionstyle.core.errors import FashionStyleError

__all__ = [
    "as_binary",
    "check_beta",
    "check_label_pair",
    "fbeta_from_counts",
    "format_table",
    "macro_fbeta",
    "per_label_scores",
]


MAX_BETA = 100.0  # F-100 is recall alone in all but name; beyond, beta squared overflows soon


def check_beta(beta: float) -> float:
    """Return beta as a float, raising FashionStyleError unless in (0, 100] (beta squared must stay finite)."""
    beta = float(beta)
    if not np.isfinite(beta) or not 0 < beta <= MAX_BETA:
        raise FashionStyleError(f"beta must be a finite number in (0, {MAX_BETA:g}], got {beta}")
    return beta


def check_label_pair(
    a: np.ndarray, b: np.ndarray, names: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Check that two arrays are 2-D (N, L) with the same shape and return them."""
    a, b = np.asarray(a), np.asarray(b)
    for arr, name in ((a, names[0]), (b, names[1])):
        if arr.ndim != 2:
            raise FashionStyleError(
                f"{name} must be a 2-D (N, L) array, got shape {arr.shape}"
            )
    if a.shape != b.shape:
        raise FashionStyleError(
            f"{names[0]} and {names[1]} must have the same shape, "
            f"got {a.shape} and {b.shape}"
        )
    return a, b


def as_binary(arr: np.ndarray, name: str) -> np.ndarray:
    """Return arr as a bool array, raising FashionStyleError unless all values are 0/1."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        return arr
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise FashionStyleError(f"{name} must contain only 0 and 1")
    return arr.astype(bool)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den == 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    return np.divide(num, den, out=out, where=den != 0)


def fbeta_from_counts(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, beta: float
) -> np.ndarray:
    """F-beta from true-positive, false-positive and false-negative counts.

    Uses (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP), which equals
    (1 + b^2) P R / (b^2 P + R); the result is 0 where the denominator is 0.
    Inputs broadcast against each other.
    """
    b2 = check_beta(beta) ** 2
    num = (1.0 + b2) * np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    fn = np.asarray(fn, dtype=np.float64)
    return _safe_ratio(num, num + b2 * fn + fp)


def per_label_scores(
    targets: np.ndarray, predictions: np.ndarray, beta: float = 2.0
) -> dict[str, np.ndarray]:
    """Precision, recall, F-beta and support for each label of (N, L) 0/1 arrays.

    Returns a dict with keys ``precision``, ``recall``, ``fbeta`` (float64, shape
    (L,)) and ``support`` (int64 count of positive targets per label). Precision
    is 0 for a label never predicted, recall 0 for a label with no positives.
    """
    targets, predictions = check_label_pair(targets, predictions, ("targets", "predictions"))
    y = as_binary(targets, "targets")
    p = as_binary(predictions, "predictions")
    tp = (y & p).sum(axis=0)
    fp = (~y & p).sum(axis=0)
    fn = (y & ~p).sum(axis=0)
    return {
        "precision": _safe_ratio(tp, tp + fp),
        "recall": _safe_ratio(tp, tp + fn),
        "fbeta": fbeta_from_counts(tp, fp, fn, beta),
        "support": (tp + fn).astype(np.int64),
    }


def macro_fbeta(targets: np.ndarray, predictions: np.ndarray, beta: float = 2.0) -> float:
    """Mean over labels of the per-label F-beta."""
    scores = per_label_scores(targets, predictions, beta)["fbeta"]
    if scores.size == 0:
        raise FashionStyleError("macro F-beta needs at least one label")
    return float(scores.mean())


TABLE_ROWS = 100  # labels listed in a printed table; the macro row covers them all


def format_table(
    label_names: Sequence[str],
    columns: Mapping[str, Sequence[float]],
    title: str | None = None,
    shown: int | None = TABLE_ROWS,
) -> str:
    """Plain-text table: one row per label, one column per key, then a 'macro' row.

    Values are printed with 3 decimals, counts (an integer column: support) as whole numbers; the macro
    row holds each column's mean (nan propagates, so a column with a nan shows 'nan' there) and a count
    column's total, over every label. Past `shown` labels (None: no limit) the first `shown` are listed
    and one line says how many were left out.
    """
    names = [str(n) for n in label_names]
    if not names:
        raise FashionStyleError("format_table needs at least one label")
    values: dict[str, np.ndarray] = {}
    counts = {key for key, col in columns.items() if np.asarray(col).dtype.kind in "iu"}
    for key, col in columns.items():
        arr = np.asarray(col, dtype=np.float64)
        if arr.shape != (len(names),):
            raise FashionStyleError(
                f"column {key!r} has shape {arr.shape}, expected ({len(names)},) "
                "to match label_names"
            )
        values[key] = arr

    listed = names if shown is None else names[:shown]
    rows = [[n, *(f"{values[k][i]:.0f}" if k in counts else f"{values[k][i]:.3f}" for k in values)]
            for i, n in enumerate(listed)]
    macro = ["macro", *(f"{values[k].sum():.0f}" if k in counts else f"{values[k].mean():.3f}" for k in values)]
    header = ["label", *values]
    widths = [max(len(r[j]) for r in (header, macro, *rows)) for j in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    rule = "-" * len(fmt(header))
    lines = [title] if title else []
    left_out = [f"... {len(names) - len(listed):,} more labels (every one in the run's summary.json and "
                "evaluate's JSON)"] if len(listed) < len(names) else []
    lines += [fmt(header), rule, *map(fmt, rows), *left_out, rule, fmt(macro)]
    return "\n".join(lines)
