"""Label imbalance: positives and negatives per label, and the weighted BCE's weights A and B.

    print(label_stats(read_labels("labels.csv"), weight_power=0.5))   # `fashionstyle stats`: the report's Table 1
    pos_w, neg_w = loss_weights(train_targets, power=0.5)

Torch-free: the report and `fashionstyle stats` read it without the training engine.
"""
from __future__ import annotations

import numpy as np

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels import LabelTable


def label_counts(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives per label of a (N, L) 0/1 array."""
    positives = targets.sum(axis=0).astype(np.int64)
    return positives, len(targets) - positives


def loss_weights(targets: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray]:
    """The A (positive) and B (negative) weight of every label; see model/losses.py.

    A label without positives (or negatives) in training gets A = B = 1.
    """
    if power < 0:
        raise FashionStyleError(f"weight_power must be >= 0, got {power}")
    positives, negatives = label_counts(targets)
    odds = np.divide(negatives, positives, out=np.ones(len(positives)),
                     where=(positives > 0) & (negatives > 0))
    scaled = odds ** power
    return 2 * scaled / (1 + scaled), 2 / (1 + scaled)


def label_stats(table: LabelTable, weight_power: float) -> str:
    """The report's Table 1: positives, negatives, ratio and A/B loss weights per label."""
    targets = table.require_targets()
    positives, negatives = label_counts(targets)
    pos_w, neg_w = loss_weights(targets, weight_power)
    width = max((len(n) for n in table.label_names), default=5) + 2
    lines = [f"{'label':<{width}}{'positives':>10}{'negatives':>10}{'pos:neg':>12}{'A':>9}{'B':>9}"]
    for name, p, q, a, b in zip(table.label_names, positives, negatives, pos_w, neg_w):
        mark = "  NO POSITIVES: cannot be learned" if p == 0 else "  NO NEGATIVES: cannot be learned" if q == 0 else ""
        lines.append(f"{name:<{width}}{p:>10d}{q:>10d}{ratio_text(p, q):>12}{a:>9.4f}{b:>9.4f}{mark}")
    return "\n".join(lines)


def ratio_text(positives: int, negatives: int) -> str:
    """`1:12` when negatives dominate, `10:1` when positives do."""
    if positives == 0 or negatives == 0:
        return f"{positives}:{negatives}"
    if positives >= negatives:
        return f"{positives / negatives:.0f}:1"
    return f"1:{negatives / positives:.0f}"
