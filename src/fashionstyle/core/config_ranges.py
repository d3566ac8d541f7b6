"""The valid range of every numeric training setting, checked before anything is created.

One table: a value outside it (or NaN, or infinite) is refused in one line that names the flag, the
config key and the range, e.g. "--lr must be a finite number in (0, 10], got nan (config lr)".
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

from fashionstyle.core.errors import FashionStyleError

MAX_IMAGE_SIZE = 2048  # a 100,000 px side would ask for ~30 GB per batch before the first step


class Range(NamedTuple):
    low: float
    high: float = math.inf
    low_open: bool = False  # (low, ...] rather than [low, ...]
    high_open: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below

    def __str__(self) -> str:
        high = "inf)" if math.isinf(self.high) else f"{self.high:g}{')' if self.high_open else ']'}"
        return f"{'(' if self.low_open else '['}{self.low:g}, {high}"


RANGES: dict[str, Range] = {
    "val_fraction": Range(0, 1, low_open=True, high_open=True),
    "image_size": Range(8, MAX_IMAGE_SIZE),
    "num_workers": Range(0, 256),
    "crop_scale": Range(0, 1, low_open=True),
    "hidden": Range(1, 65536),
    "dropout": Range(0, 1, high_open=True),
    "weight_power": Range(0, 10),
    "focal_gamma": Range(0, 100),
    "focal_alpha": Range(0, 1),
    "asl_gamma_pos": Range(0, 100),
    "asl_gamma_neg": Range(0, 100),
    "asl_clip": Range(0, 1, high_open=True),
    "epochs": Range(0, 100_000),  # 0: the head alone, fitted on cached features (needs head_fit_epochs)
    "batch_size": Range(1, 1 << 20),
    "lr": Range(0, 10, low_open=True),
    "weight_decay": Range(0, 10),
    "lr_factor": Range(0, 1, low_open=True, high_open=True),
    "lr_patience": Range(0, 10_000),
    "backbone_lr_scale": Range(0, 1, low_open=True),
    "freeze_epochs": Range(0, 100_000),
    "head_fit_epochs": Range(0, 100_000),
    "ema_decay": Range(0, 1, high_open=True),
    "mixup": Range(0, 100),
    "cutmix": Range(0, 100),
    "hard_weight": Range(0, 1),
    "rounds": Range(1, 100),
    "beta": Range(0, 100, low_open=True),
    "devices": Range(1, 1 << 16),
    "num_nodes": Range(1, 1 << 16),
}


def check_ranges(values: dict[str, Any]) -> None:
    """Refuse the first setting outside its range (None means unset and passes)."""
    for name, valid in RANGES.items():
        value = values.get(name)
        if value is None or isinstance(value, bool):
            continue
        if not isinstance(value, (int, float)) or not valid.holds(float(value)):
            raise FashionStyleError(f"--{name.replace('_', '-')} must be a finite number in {valid}, got {value!r} "
                                    f"(config {name})")
