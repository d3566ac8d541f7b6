"""fashionstyle: multi-label fashion style recognition with per-label tuned thresholds.

The public API; everything else is internal.
"""
from .config import TrainConfig
from .errors import FashionStyleError
from .labels import JD_STYLES, LabelTable, read_labels
from .losses import AsymmetricLoss, FocalLoss, WeightedBCE, create_loss, loss_weights
from .metrics import macro_fbeta, per_label_scores
from .models import StyleNet, create_model, load_model, save_model
from .predict import Predictor
from .run import RunDir
from .thresholds import ThresholdTuner, best_threshold, fbeta_curve
from .training import train

__version__ = "0.1.0"
__all__ = [
    "AsymmetricLoss", "FashionStyleError", "FocalLoss", "JD_STYLES", "LabelTable", "Predictor", "RunDir", "StyleNet",
    "ThresholdTuner", "TrainConfig", "WeightedBCE", "best_threshold", "create_loss",
    "create_model", "fbeta_curve", "load_model", "loss_weights", "macro_fbeta",
    "per_label_scores", "read_labels", "save_model", "train",
]
