"""The predictor interface every runtime implements (PyTorch, ONNX Runtime fp32 and int8).

    predictor = load_predictor("runs/x", "onnx")             # runtimes.py: any BasePredictor
    probs = predictor.predict_proba(["a.jpg", "b.jpg"])       # (N, L) float32, NaN rows for skipped images
    probs = predictor.predict_proba_images([pil_image])       # (N, L) for decoded images
    labels = predictor.predict(["a.jpg"])                     # (N, L) 0/1 at predictor.thresholds

A subclass sets `label_names`, `tuner`, `tta` and `transforms` (one test-time
view stack (T, 3, H, W) per distinct preprocessing of its members) and
implements `_predict_views`; reading files, skipping bad images, empty input
and thresholds are done here, once, so every runtime behaves the same.

Torch-free at import time: the ONNX serving path imports this module.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .errors import FashionStyleError
from .run import RunDir
from .thresholds import ThresholdTuner


class BasePredictor(ABC):
    """Image files or decoded images -> probabilities (N, L) -> 0/1 labels at tuned thresholds."""

    label_names: list[str]
    tuner: ThresholdTuner
    tta: str                      # the test-time augmentation applied ("none", "flip", ...)
    transforms: list[Callable]    # PIL image -> (T, 3, H, W) views, one per distinct preprocessing
    pin_memory: bool = False

    @property
    def thresholds(self) -> np.ndarray:
        return self.tuner.thresholds_

    @abstractmethod
    def _predict_views(self, views: Sequence[Any]) -> np.ndarray:
        """Probabilities (B, L) for one batch: `views[k]` is the (B, T, 3, H, W) stack of transforms[k]."""

    def _views(self, image: Image.Image) -> tuple[Any, ...]:
        return tuple(t(image) for t in self.transforms)

    def predict_proba(self, images: Sequence[str | Path], batch_size: int = 64, num_workers: int = 0,
                      progress: bool = False, on_bad: str = "fail") -> np.ndarray:
        """Probabilities (N, L) for image files, in input order.

        With on_bad="skip" an unreadable image gets a row of NaN instead of an error.
        """
        from torch.utils.data import DataLoader

        from .data import ImageDataset, collate_skipping

        loader = DataLoader(ImageDataset(images, None, self._views, on_bad), batch_size=batch_size,
                            num_workers=num_workers, collate_fn=collate_skipping, pin_memory=self.pin_memory)
        out = np.full((len(images), len(self.label_names)), np.nan, np.float32)
        for batch in tqdm(loader, desc="predict", unit="batch", disable=not progress):
            if batch.images is not None:
                out[batch.index.numpy()] = self._predict_views(batch.images)
        return out

    def predict_proba_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Probabilities (N, L) for decoded PIL images."""
        if not images:
            return np.zeros((0, len(self.label_names)), np.float32)
        import torch

        from .data import to_rgb

        views = [self._views(to_rgb(image)) for image in images]  # as open_rgb gives files
        return self._predict_views([torch.stack(v) for v in zip(*views)])

    def predict(self, images: Sequence[str | Path], **kwargs: Any) -> np.ndarray:
        """0/1 labels (N, L) at the run's tuned thresholds; `kwargs` as predict_proba's."""
        return self.tuner.predict(self.predict_proba(images, **kwargs))


def combine_probs(n_images: int, n_labels: int,
                  parts: Sequence[tuple[np.ndarray, Sequence[int], Sequence[int], float]]) -> np.ndarray:
    """Weighted mean, per label, of the members that predict it.

    `parts`: one (probs (N, outputs), columns, targets, weight) per member.
    """
    total = np.zeros((n_images, n_labels), np.float64)
    weight = np.zeros(n_labels, np.float64)
    for probs, columns, targets, w in parts:
        total[:, list(targets)] += w * probs[:, list(columns)]
        weight[list(targets)] += w
    return (total / weight).astype(np.float32)


def check_coverage(label_names: Sequence[str], targets: Sequence[Sequence[int]]) -> None:
    """Every label is given by at least one member (`targets`: each member's label indices)."""
    covered = {t for member in targets for t in member}
    missing = [n for i, n in enumerate(label_names) if i not in covered]
    if missing:
        raise FashionStyleError(f"no member model predicts {', '.join(missing)}")


def check_tta(run: RunDir, tta: str | None) -> str:
    """The run's TTA, or a clear error when another one is asked for."""
    tuned = run.tta()
    if tta is not None and tta != tuned:
        raise FashionStyleError(f"{run.path}: thresholds were tuned with TTA {tuned!r}, not {tta!r}; "
                                f"run `fashionstyle tune {run.path} --tta {tta}` first")
    return tuned
