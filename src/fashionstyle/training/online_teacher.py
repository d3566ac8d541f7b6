"""Online (consistent) teaching: the teacher predicts the student's own input at every step.

    teacher = OnlineTeacher.from_run(RunDir.open("runs/fused3"), columns, hard_weight=0.5)
    labelled = with_known_mass(targets)             # in the training step: before the mix,
    images, labelled = mix_batch(images, labelled)  # blended alike,
    targets = teacher.targets(pixels, labelled)     # then the teacher on the very input

Stored teaching (distill.py) predicts each image once, on its evaluation views. Online, the teacher
sees exactly the crop, flip and mixup/cutmix blend the student sees (Beyer et al. 2022, "a good
teacher is patient and consistent"), at the price of a teacher forward per step. Each image's
target is hard_weight x its labels + the rest x the teacher, or the teacher alone for an unlabelled
image (labels NaN); a blend of two images takes each part's share of that, with the teacher's
probabilities of the blend: hard_weight x the blended labels + (1 - hard_weight x the labelled
share) x the teacher. The teacher's own TTA is not used: it sees the one view the student sees.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fashionstyle.core.run import RunDir
from fashionstyle.data.images.files import Preprocessing
from fashionstyle.inference.torch_predictor import Predictor
from fashionstyle.model.network import StyleNet


@dataclass
class TeacherModel:
    model: StyleNet
    preprocessing: Preprocessing
    parts: list[tuple[list[int], list[int], float]]  # (its output columns, the run's labels they give, weight)


def with_known_mass(targets: torch.Tensor) -> torch.Tensor:
    """(B, L) targets, NaN rows for unlabelled images -> (B, L + 1): the labels (0 where unknown) and
    how much of the row is labelled (1 or 0), to be blended by mixup/cutmix like the labels."""
    known = ~torch.isnan(targets).any(dim=1, keepdim=True)
    return torch.cat([torch.where(known, targets, torch.zeros_like(targets)), known.to(targets.dtype)], dim=1)


def unnormalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """A model's normalised input (B, 3, H, W) back to 0..1 pixels (mean, std: (1, 3, 1, 1))."""
    return images * std + mean


class OnlineTeacher:
    """A teacher run's models, its probabilities combined per label as its predictor does, and the
    student's targets made from them."""

    def __init__(self, models: list[TeacherModel], n_labels: int, columns: list[int], hard_weight: float,
                 thresholds: np.ndarray | None = None):
        self.models, self.n_labels, self.hard_weight = models, n_labels, hard_weight
        self.columns = torch.tensor(columns)  # the teacher's label of each of the student's
        self.thresholds = None if thresholds is None else torch.tensor(thresholds, dtype=torch.float32)
        self.stats = [self._stats(t.preprocessing, torch.device("cpu")) for t in models]  # (mean, std) each

    @classmethod
    def from_run(cls, run: RunDir, columns: list[int], hard_weight: float,
                 thresholds: np.ndarray | None = None) -> "OnlineTeacher":
        """`run`'s member models on the CPU (`to` moves them), each file loaded once."""
        predictor = Predictor.from_run(run, device="cpu", precision="fp32")
        models: dict[int, TeacherModel] = {}
        for m in predictor.members:
            found = models.setdefault(id(m.model), TeacherModel(m.model, predictor.preprocessing[m.view], []))
            found.parts.append((m.columns, m.targets, m.weight))
        return cls(list(models.values()), len(predictor.label_names), columns, hard_weight, thresholds)

    def to(self, device: torch.device) -> "OnlineTeacher":
        """The models and every constant on `device`, once (not a copy per step)."""
        for t in self.models:
            t.model.to(device).eval().requires_grad_(False)
            if device.type == "cuda":
                t.model.to(memory_format=torch.channels_last)
        self.columns = self.columns.to(device)
        self.thresholds = None if self.thresholds is None else self.thresholds.to(device)
        self.stats = [self._stats(t.preprocessing, device) for t in self.models]
        return self

    @staticmethod
    def _stats(p: Preprocessing, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(torch.tensor(v, dtype=torch.float32, device=device).view(1, 3, 1, 1) for v in (p.mean, p.std))

    @torch.no_grad()
    def probs(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float images in 0..1 -> (B, student's L) the teacher's probabilities."""
        total = pixels.new_zeros((len(pixels), self.n_labels))
        weight = pixels.new_zeros(self.n_labels)
        for t, (mean, std) in zip(self.models, self.stats):
            probs = torch.sigmoid(self._logits(t, (mean, std), pixels).float())
            for columns, labels, w in t.parts:
                total[:, labels] += w * probs[:, columns]
                weight[labels] += w
        chosen = (total / weight)[:, self.columns]
        if self.thresholds is not None:  # pseudo "hard": the teacher's decisions
            chosen = (chosen >= self.thresholds).float()
        return chosen

    @staticmethod
    def _logits(t: TeacherModel, stats: tuple[torch.Tensor, torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
        side = t.preprocessing.image_size
        x = pixels if pixels.shape[-1] == side else F.interpolate(
            pixels, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        mean, std = stats
        cuda = x.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext():
            return t.model((x - mean) / std)

    def targets(self, pixels: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
        """The student's targets for `pixels` from `labelled` (B, L + 1: with_known_mass's, blended as
        the images were): hard_weight x the labels + (1 - hard_weight x the labelled share) x the
        teacher's probabilities of `pixels`."""
        labels, share = labelled[:, :-1], labelled[:, -1:]
        return self.hard_weight * labels + (1 - self.hard_weight * share) * self.probs(pixels)
