"""Predictor: a run directory -> probabilities and labels for images.

    predictor = Predictor.from_run("runs/densenet201")
    probs = predictor.predict_proba(["a.jpg", "b.jpg"])   # (N, L)
    labels = predictor.predict(["a.jpg", "b.jpg"])        # (N, L) 0/1 at the tuned thresholds
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .data import ImageDataset, eval_transform
from .models import StyleNet, load_model
from .run import RunDir
from .thresholds import ThresholdTuner


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Predictor:
    """A model, its preprocessing and its per-label thresholds."""

    def __init__(self, model: StyleNet, record: dict, tuner: ThresholdTuner, device: str = "auto"):
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.label_names: list[str] = record["label_names"]
        self.tuner = tuner
        self.transform = eval_transform(record["image_size"], record["mean"], record["std"])

    @classmethod
    def from_run(cls, run: str | Path | RunDir, device: str = "auto") -> "Predictor":
        run = run if isinstance(run, RunDir) else RunDir.open(run)
        model, record = load_model(run / "model.pt")
        return cls(model, record, run.thresholds(), device)

    @property
    def thresholds(self) -> np.ndarray:
        return self.tuner.thresholds_

    @torch.inference_mode()
    def predict_proba(self, images: Sequence[str | Path], batch_size: int = 64,
                      num_workers: int = 0, progress: bool = False) -> np.ndarray:
        """Sigmoid probabilities (N, L) for image files, in input order."""
        dataset = ImageDataset(images, None, self.transform)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                            pin_memory=self.device.type == "cuda")
        batches = tqdm(loader, desc="predict", unit="batch", disable=not progress)
        out = [self._forward(batch) for batch, _, _ in batches]
        return np.concatenate(out) if out else np.zeros((0, len(self.label_names)), np.float32)

    @torch.inference_mode()
    def predict_proba_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Probabilities (N, L) for decoded PIL images."""
        batch = torch.stack([self.transform(image.convert("RGB")) for image in images])
        return self._forward(batch)

    def predict(self, images: Sequence[str | Path], **kwargs) -> np.ndarray:
        """0/1 labels (N, L) at the run's tuned thresholds."""
        return self.tuner.predict(self.predict_proba(images, **kwargs))

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        logits = self.model(batch.to(self.device, non_blocking=True))  # (B, L)
        return torch.sigmoid(logits.float()).cpu().numpy()
