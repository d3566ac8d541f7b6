"""Multi-label losses against label imbalance: weighted BCE (the report's), focal loss and ASL.

Every loss here takes logits x and 0/1 targets y of shape (B, L), with p = sigmoid(x);
it sums the per-label losses and averages over the batch. `create_loss` builds one by
name from config.LOSSES, the table that names each loss's implementation and parameters.

`weighted_bce` and `bce`
    Per label, with P positives and Q negatives in the training set and odds
    r = Q / P, the report's loss is

        L = -(A * y * ln p + B * (1 - y) * ln(1 - p))

    with weights chosen so that the rarer side weighs more:

        A = 2 * r**g / (1 + r**g),   B = 2 / (1 + r**g)

    `g` (`weight_power`) sets the strength: g = 1 balances the two sides fully
    (A : B = Q : P, so positives and negatives contribute equally in total;
    A = 2Q/N, B = 2P/N), g = 0 gives A = B = 1, plain BCE (`bce`). A + B = 2
    always, so every label keeps the same overall scale as plain BCE.

`focal` (Lin et al. 2017, "Focal Loss for Dense Object Detection")
    L = -(alpha * y * (1 - p)**gamma * ln p + (1 - alpha) * (1 - y) * p**gamma * ln(1 - p))

    gamma (`focal_gamma`, default 2) down-weights the easy, well-classified
    examples; alpha (`focal_alpha`, default 0.25, None for no weighting: both
    terms weigh 1) weighs positives against negatives. gamma = 0 with
    alpha = None is plain BCE.

`asl` (Ridnik et al. 2021, "Asymmetric Loss For Multi-Label Classification")
    L+ = (1 - p)**gamma_pos * ln p
    L- = p_m**gamma_neg * ln(1 - p_m),   p_m = max(p - clip, 0)
    L  = -(y * L+ + (1 - y) * L-)

    The many easy negatives of rare labels are focused away harder (gamma_neg,
    default 4) than the positives (gamma_pos, default 0), and negatives with
    p < clip (default 0.05) are dropped entirely. gamma_pos = gamma_neg = 0 with
    clip = 0 is plain BCE.

The training-label weights A and B apply to `weighted_bce` only; focal loss and
ASL take no label statistics.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fashionstyle.core.config import LOSSES, TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.stats import loss_weights

# Smallest probability ASL takes the log of (the paper's code clamps at 1e-8 too).
ASL_EPS = 1e-8


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


class FocalLoss(nn.Module):
    """Sum over labels of -(α·y·(1-p)^γ·ln p + (1-α)·(1-y)·p^γ·ln(1-p)), mean over the batch.

    alpha=None weighs both terms 1. Computed in log space: ln p = logsigmoid(x),
    (1-p)^γ = exp(γ·logsigmoid(-x)), so any logit gives a finite loss and gradient.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = 0.25):
        super().__init__()
        self.gamma = _check_nonneg("focal_gamma", gamma)
        if alpha is not None and not (_check_nonneg("focal_alpha", alpha) <= 1.0):
            raise FashionStyleError(f"focal_alpha must be in [0, 1] or None, got {alpha}")
        self.alpha = None if alpha is None else float(alpha)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()  # (B, L)
        log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)  # ln p, ln(1-p)
        pos = torch.exp(self.gamma * log_q) * log_p   # (1-p)^γ ln p
        neg = torch.exp(self.gamma * log_p) * log_q   # p^γ ln(1-p)
        a_pos, a_neg = (1.0, 1.0) if self.alpha is None else (self.alpha, 1.0 - self.alpha)
        per_label = -(a_pos * targets * pos + a_neg * (1 - targets) * neg)
        return per_label.sum(dim=1).mean()

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha}"


class AsymmetricLoss(nn.Module):
    """ASL: sum over labels of -(y·(1-p)^γ+·ln p + (1-y)·p_m^γ-·ln(1-p_m)), mean over the batch.

    p_m = max(p - clip, 0). ln p and, without clip, ln(1-p) are logsigmoids; with
    a clip, 1 - p_m = min(sigmoid(-x) + clip, 1) is clamped at 1e-8 before its log,
    as in the paper's code. Gradients stay finite for any logit.
    """

    def __init__(self, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05):
        super().__init__()
        self.gamma_pos = _check_nonneg("asl_gamma_pos", gamma_pos)
        self.gamma_neg = _check_nonneg("asl_gamma_neg", gamma_neg)
        if not _check_nonneg("asl_clip", clip) < 1.0:
            raise FashionStyleError(f"asl_clip must be in [0, 1), got {clip}")
        self.clip = float(clip)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()  # (B, L)
        log_q = F.logsigmoid(-logits)  # ln(1-p)
        pos = torch.exp(self.gamma_pos * log_q) * F.logsigmoid(logits)  # (1-p)^γ+ ln p
        if self.clip > 0:
            q_m = (torch.sigmoid(-logits) + self.clip).clamp(max=1.0)  # 1 - p_m
            log_q_m = torch.log(q_m.clamp(min=ASL_EPS))
            # p_m = 0 gives ln(1 - p_m) = 0, so the clamp of the base changes nothing there.
            p_m = (1.0 - q_m).clamp(min=ASL_EPS)
        else:
            log_q_m = log_q
            p_m = torch.sigmoid(logits)
        neg = (p_m.pow(self.gamma_neg) if self.gamma_neg else 1.0) * log_q_m
        per_label = -(targets * pos + (1 - targets) * neg)
        return per_label.sum(dim=1).mean()

    def extra_repr(self) -> str:
        return f"gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, clip={self.clip}"


def _check_nonneg(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FashionStyleError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise FashionStyleError(f"{name} must be a finite number >= 0, got {value}")
    return value


@LOSSES.implements("weighted_bce")
def weighted_bce(train_targets: np.ndarray, power: float) -> WeightedBCE:
    """The report's loss: weights A, B per label from the training labels' odds."""
    return WeightedBCE(*loss_weights(train_targets, power))


@LOSSES.implements("bce")
def plain_bce(train_targets: np.ndarray) -> WeightedBCE:
    ones = np.ones(train_targets.shape[1])
    return WeightedBCE(ones, ones)


@LOSSES.implements("focal")
def focal(train_targets: np.ndarray, gamma: float, alpha: float | None) -> FocalLoss:
    return FocalLoss(gamma, alpha)


@LOSSES.implements("asl")
def asymmetric(train_targets: np.ndarray, gamma_pos: float, gamma_neg: float, clip: float) -> AsymmetricLoss:
    return AsymmetricLoss(gamma_pos, gamma_neg, clip)


def create_loss(name: str, train_targets: np.ndarray, **settings: Any) -> nn.Module:
    """The loss `name` (config.LOSSES) for training labels `train_targets` (N, L).

    `settings` are TrainConfig fields (weight_power, focal_gamma, ...); a parameter of the loss that is
    not among them takes TrainConfig's default; those of other losses are ignored.
    """
    unknown = sorted(set(settings) - {p for choice in LOSSES.values() for p in choice.params})
    if unknown:
        raise FashionStyleError(f"unknown loss parameter(s) {', '.join(unknown)}; "
                                f"valid: {', '.join(p for c in LOSSES.values() for p in c.params)}")
    choice = LOSSES.check(name)
    defaults = TrainConfig()
    keywords = {keyword: settings.get(field, getattr(defaults, field)) for field, keyword in choice.params.items()}
    return LOSSES.implementation(name)(train_targets, **keywords)  # every loss's factory: (train_targets, **its parameters)
