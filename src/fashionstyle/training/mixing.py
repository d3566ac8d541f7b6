"""Mixup and cutmix for multi-label batches: images and their targets blended alike.

    images, targets = mix_batch(images, targets, mixup=0.2, cutmix=1.0)   # in the training step

Each batch is blended with itself in a shuffled order. Mixup (Zhang et al. 2018) blends whole
images with weight lam ~ Beta(alpha, alpha); cutmix (Yun et al. 2019) pastes a box of the shuffled
batch, of area 1 - lam. The targets of a multi-label image are blended by the same lam (mixup) or
by the pasted area (cutmix), so a style present in one image only becomes a partial target. With
both set, each batch takes one of the two (even odds). Random draws come from torch's generator,
seeded per epoch by the training loop, so a resumed run mixes as the lost epochs did.
"""
from __future__ import annotations

import math

import torch


def mix_batch(images: torch.Tensor, targets: torch.Tensor, mixup: float = 0.0,
              cutmix: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) images and (B, L) targets, mixed when `mixup` or `cutmix` (Beta alphas) is > 0."""
    if (mixup <= 0 and cutmix <= 0) or len(images) < 2:
        return images, targets
    use_cutmix = cutmix > 0 and (mixup <= 0 or bool(torch.rand(1) < 0.5))
    alpha = cutmix if use_cutmix else mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    order = torch.randperm(len(images), device=images.device)
    if not use_cutmix:
        return _blend(images, order, lam), _blend(targets, order, lam)
    top, bottom, left, right = cut_box(images.shape[-2], images.shape[-1], lam)
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = images[order][..., top:bottom, left:right]
    kept = 1 - (bottom - top) * (right - left) / (images.shape[-2] * images.shape[-1])
    return mixed, _blend(targets, order, kept)


def cut_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a box of area about (1 - lam) x the image, centred at random
    (clipped at the edges: the targets are blended by the area actually pasted)."""
    cut = math.sqrt(1 - lam)
    h, w = int(height * cut), int(width * cut)
    cy, cx = int(torch.randint(height, (1,))), int(torch.randint(width, (1,)))
    return max(cy - h // 2, 0), min(cy + h // 2, height), max(cx - w // 2, 0), min(cx + w // 2, width)


def _blend(values: torch.Tensor, order: torch.Tensor, lam: float) -> torch.Tensor:
    values = values if values.is_floating_point() else values.float()
    return lam * values + (1 - lam) * values[order]
