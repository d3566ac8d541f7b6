"""Weighted binary cross-entropy against label imbalance (the report's loss), and plain BCE.

Per label, with P positives and Q negatives in the training set and odds
r = Q / P, the report's loss is

    L = -(A * y * ln p + B * (1 - y) * ln(1 - p))

with weights chosen so that the rarer side weighs more:

    A = 2 * r**g / (1 + r**g),   B = 2 / (1 + r**g)

`g` (`weight_power`) sets the strength: g = 1 balances the two sides fully
(A : B = Q : P, so positives and negatives contribute equally in total;
A = 2Q/N, B = 2P/N), g = 0 gives A = B = 1, plain BCE. A + B = 2 always, so
every label keeps the same overall scale as plain BCE. The multi-label loss
sums the per-label losses (averaged over the batch).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .errors import FashionStyleError


def label_counts(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives per label of a (N, L) 0/1 array."""
    positives = targets.sum(axis=0).astype(np.int64)
    return positives, len(targets) - positives


def loss_weights(targets: np.ndarray, power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The A (positive) and B (negative) weight of every label; see the module docstring.

    A label without positives (or negatives) in training gets A = B = 1.
    """
    if power < 0:
        raise FashionStyleError(f"weight_power must be >= 0, got {power}")
    positives, negatives = label_counts(targets)
    odds = np.divide(negatives, positives, out=np.ones(len(positives)),
                     where=(positives > 0) & (negatives > 0))
    scaled = odds ** power
    return 2 * scaled / (1 + scaled), 2 / (1 + scaled)


class WeightedBCE(nn.Module):
    """Sum over labels of A·y·(-ln p) + B·(1-y)·(-ln(1-p)), mean over the batch."""

    def __init__(self, pos_weight: np.ndarray, neg_weight: np.ndarray):
        super().__init__()
        self.register_buffer("pos_weight", torch.as_tensor(pos_weight, dtype=torch.float32))
        self.register_buffer("neg_weight", torch.as_tensor(neg_weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()  # (B, L)
        # -ln p = softplus(-x), -ln(1-p) = softplus(x): stable for any logit.
        per_label = (self.pos_weight * targets * F.softplus(-logits)
                     + self.neg_weight * (1 - targets) * F.softplus(logits))
        return per_label.sum(dim=1).mean()


def create_loss(name: str, train_targets: np.ndarray, power: float = 1.0) -> WeightedBCE:
    """`weighted_bce` (weights from the training labels) or `bce` (A = B = 1)."""
    if name == "weighted_bce":
        return WeightedBCE(*loss_weights(train_targets, power))
    if name == "bce":
        ones = np.ones(train_targets.shape[1])
        return WeightedBCE(ones, ones)
    raise FashionStyleError(f"unknown loss {name!r}; valid: weighted_bce, bce")
