"""fashionstyle: multi-label fashion style recognition with per-label tuned thresholds.

The public API; everything else is internal. Names are imported on first use (PEP 562), so
`import fashionstyle` and `fashionstyle --help` do not pay for torch, Lightning or timm.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_MODULES = {  # public name -> the module that defines it
    "StyleTagger": "api", "load": "api",
    "TrainConfig": "config",
    "FashionStyleError": "errors",
    "Explainer": "explain",
    "JD_STYLES": "labels", "LabelTable": "labels", "read_labels": "labels",
    "AsymmetricLoss": "losses", "FocalLoss": "losses", "WeightedBCE": "losses", "create_loss": "losses",
    "loss_weights": "losses",
    "macro_fbeta": "metrics", "per_label_scores": "metrics",
    "StyleNet": "models", "create_model": "models", "load_model": "models", "save_model": "models",
    "Predictor": "predict",
    "RunDir": "run",
    "ThresholdTuner": "thresholds", "best_threshold": "thresholds", "fbeta_curve": "thresholds",
    "train": "fit",
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
    from .api import StyleTagger, load
    from .config import TrainConfig
    from .errors import FashionStyleError
    from .explain import Explainer
    from .fit import train
    from .labels import JD_STYLES, LabelTable, read_labels
    from .losses import AsymmetricLoss, FocalLoss, WeightedBCE, create_loss, loss_weights
    from .metrics import macro_fbeta, per_label_scores
    from .models import StyleNet, create_model, load_model, save_model
    from .predict import Predictor
    from .run import RunDir
    from .thresholds import ThresholdTuner, best_threshold, fbeta_curve
