"""Predictor: a run directory -> probabilities and labels for images, on PyTorch.

    predictor = Predictor.from_run("runs/densenet201")
    probs = predictor.predict_proba(["a.jpg", "b.jpg"])   # (N, L)
    labels = predictor.predict(["a.jpg", "b.jpg"])        # (N, L) 0/1 at the tuned thresholds

Every kind of run predicts through this one class: a multi-label run has one
member model; single-label, label-wise-epoch and fused runs have several, and
each label's probability is the weighted mean of the members that give it.
The interface (predictors.BasePredictor) is shared with onnx_predictor.OnnxPredictor.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from .data import ImageDataset, collate_skipping, tta_transform
from .errors import FashionStyleError
from .models import StyleNet, load_model
from .predictors import BasePredictor, check_coverage, check_tta, combine_probs
from .run import Member, RunDir
from .thresholds import ThresholdTuner


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class LoadedMember:
    model: StyleNet
    columns: list[int]   # which of the model's outputs are used
    targets: list[int]   # ... and which of the run's labels they give
    weight: float
    view: int            # index of this member's preprocessing in Predictor.transforms


def _preprocessing_key(record: dict) -> tuple:
    return record["image_size"], tuple(record["mean"]), tuple(record["std"])


class Predictor(BasePredictor):
    """Member models, their preprocessing, and the run's per-label thresholds."""

    def __init__(self, members: Sequence[tuple[StyleNet, dict, Member]], label_names: list[str],
                 tuner: ThresholdTuner, device: str = "auto", tta: str = "none"):
        self.device = pick_device(device)
        self.pin_memory = self.device.type == "cuda"
        self.tta = tta
        self.label_names = list(label_names)
        self.tuner = tuner
        keys: list[tuple] = []
        self.members: list[LoadedMember] = []
        for model, record, member in members:
            key = _preprocessing_key(record)
            if key not in keys:
                keys.append(key)
            self.members.append(self._load(model, record, member, keys.index(key)))
        self.preprocessing = keys  # (image_size, mean, std) of each view
        self.transforms = [tta_transform(size, mean, std, tta) for size, mean, std in keys]

    def _load(self, model: StyleNet, record: dict, member: Member, view: int) -> LoadedMember:
        outputs = record["label_names"]
        unknown = [n for n in member.labels if n not in outputs or n not in self.label_names]
        if unknown:
            raise FashionStyleError(f"{member.model}: does not predict {', '.join(unknown)}")
        return LoadedMember(model.to(self.device).eval(), [outputs.index(n) for n in member.labels],
                            [self.label_names.index(n) for n in member.labels], member.weight, view)

    @classmethod
    def from_run(cls, run: str | Path | RunDir, device: str = "auto", tta: str | None = None,
                 retune: bool = False) -> "Predictor":
        """The run's models; `tta` must be the one its thresholds were tuned with (the default),
        unless `retune` (the predictor then serves to tune new thresholds)."""
        run = run if isinstance(run, RunDir) else RunDir.open(run)
        tta = tta if retune and tta else check_tta(run, tta)
        models: dict[Path, tuple[StyleNet, dict]] = {}  # each file loaded once, however many members use it
        for member in run.members():
            models.setdefault(member.model, load_model(member.model))
        loaded = [(*models[m.model], m) for m in run.members()]
        predictor = cls(loaded, run.label_names(), run.thresholds(), device, tta)
        predictor.check_coverage()
        return predictor

    def _batches(self, images: Sequence[str | Path], batch_size: int, num_workers: int,
                 on_bad: str) -> Iterator[tuple[np.ndarray, list[torch.Tensor]]]:
        """As BasePredictor's, on a DataLoader (worker processes, pinned memory on CUDA)."""
        loader = DataLoader(ImageDataset(images, None, self._views, on_bad), batch_size=batch_size,
                            num_workers=num_workers, collate_fn=collate_skipping, pin_memory=self.pin_memory)
        for batch in loader:
            if batch.images is not None:
                yield batch.index.numpy(), batch.images

    def _stack(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(views))

    def check_coverage(self) -> None:
        check_coverage(self.label_names, [m.targets for m in self.members])

    @torch.inference_mode()
    def _predict_views(self, views: Sequence[torch.Tensor]) -> np.ndarray:
        """Weighted mean, per label, of the members that predict it."""
        outputs: dict[int, np.ndarray] = {}  # each model runs once per batch
        for member in self.members:
            if id(member.model) not in outputs:
                outputs[id(member.model)] = self._forward(member.model, views[member.view])  # (B, outputs)
        parts = [(outputs[id(m.model)], m.columns, m.targets, m.weight) for m in self.members]
        return combine_probs(len(views[0]), len(self.label_names), parts)

    def _forward(self, model: StyleNet, batch: torch.Tensor) -> np.ndarray:
        """Probabilities (B, outputs), averaged over the T test-time views of each image."""
        b, t = batch.shape[:2]  # (B, T, 3, H, W)
        logits = model(batch.flatten(0, 1).to(self.device, non_blocking=True))  # (B*T, outputs)
        return torch.sigmoid(logits.float()).view(b, t, -1).mean(dim=1).cpu().numpy()
