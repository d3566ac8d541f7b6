"""fashionstyle: multi-label fashion style recognition with per-label tuned thresholds.

The public API; everything else is internal. Names are imported on first use (PEP 562), so
`import fashionstyle` and `fashionstyle --help` do not pay for torch, Lightning or timm.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fashionstyle.core.version import __version__  # noqa: F401 - the public name

_MODULES = {  # public name -> the module that defines it
    "StyleTagger": "api", "load": "api",
    "TrainConfig": "core.config",
    "FashionStyleError": "core.errors",
    "Prediction": "core.prediction",
    "Explainer": "analysis.explain",
    "JD_STYLES": "data.labels.names", "LabelTable": "data.labels.table", "read_labels": "data.labels.read",
    "AsymmetricLoss": "model.losses", "FocalLoss": "model.losses", "WeightedBCE": "model.losses", "create_loss": "model.losses",
    "loss_weights": "data.labels.stats",
    "macro_fbeta": "core.metrics", "per_label_scores": "core.metrics",
    "StyleNet": "model.network", "create_model": "model.network", "load_model": "model.network", "save_model": "model.network",
    "Predictor": "inference.torch_predictor",
    "RunDir": "core.run",
    "ThresholdTuner": "core.thresholds", "best_threshold": "core.thresholds", "fbeta_curve": "core.thresholds",
    "train": "api",
}
__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)
    globals()[name] = value  # the next look-up skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULES])


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from fashionstyle.analysis.explain import Explainer
    from fashionstyle.core.config import TrainConfig
    from fashionstyle.core.errors import FashionStyleError
    from fashionstyle.core.metrics import macro_fbeta, per_label_scores
    from fashionstyle.core.prediction import Prediction
    from fashionstyle.core.run import RunDir
    from fashionstyle.core.thresholds import ThresholdTuner, best_threshold, fbeta_curve
    from fashionstyle.data.labels.names import JD_STYLES
    from fashionstyle.data.labels.stats import loss_weights
    from fashionstyle.data.labels.table import LabelTable
    from fashionstyle.data.labels.read import read_labels
    from fashionstyle.inference.torch_predictor import Predictor
    from fashionstyle.model.losses import AsymmetricLoss, FocalLoss, WeightedBCE, create_loss
    from fashionstyle.model.network import StyleNet, create_model, load_model, save_model

    from .api import StyleTagger, load, train
