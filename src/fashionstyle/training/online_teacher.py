"""Online (consistent) teaching: the teacher predicts the student's own input at every step.

    teacher = OnlineTeacher.from_run(RunDir.open("runs/fused3"), columns, hard_weight=0.5)
    targets = teacher.targets(pixels, targets)   # in the training step, after crop, flip and mix

Stored teaching (distill.py) predicts each image once, on its evaluation views. Online, the teacher
sees exactly the crop, flip and mixup/cutmix blend the student sees (Beyer et al. 2022, "a good
teacher is patient and consistent"), at the price of a teacher forward per step. A row whose labels
are unknown (NaN: an unlabelled image, or a mix with one) learns the teacher alone; a labelled row
learns hard_weight x its (mixed) labels + the rest x the teacher. The teacher's own TTA is not used:
it sees the one view the student sees.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fashionstyle.core.run import RunDir
from fashionstyle.data.images import Preprocessing
from fashionstyle.inference.torch_predictor import Predictor
from fashionstyle.model.network import StyleNet


@dataclass
class TeacherModel:
    model: StyleNet
    preprocessing: Preprocessing
    parts: list[tuple[list[int], list[int], float]]  # (its output columns, the run's labels they give, weight)


class OnlineTeacher:
    """A teacher run's models, its probabilities combined per label as its predictor does, and the
    student's targets made from them."""

    def __init__(self, models: list[TeacherModel], n_labels: int, columns: list[int], hard_weight: float,
                 thresholds: np.ndarray | None = None):
        self.models, self.n_labels, self.hard_weight = models, n_labels, hard_weight
        self.columns = torch.tensor(columns)  # the teacher's label of each of the student's
        self.thresholds = None if thresholds is None else torch.tensor(thresholds, dtype=torch.float32)

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
        for t in self.models:
            t.model.to(device).eval().requires_grad_(False)
            if device.type == "cuda":
                t.model.to(memory_format=torch.channels_last)
        return self

    @torch.no_grad()
    def probs(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float images in 0..1 -> (B, student's L) the teacher's probabilities."""
        total = pixels.new_zeros((len(pixels), self.n_labels))
        weight = pixels.new_zeros(self.n_labels)
        for t in self.models:
            probs = torch.sigmoid(self._logits(t, pixels).float())
            for columns, labels, w in t.parts:
                total[:, labels] += w * probs[:, columns]
                weight[labels] += w
        chosen = (total / weight)[:, self.columns.to(pixels.device)]
        if self.thresholds is not None:  # pseudo "hard": the teacher's decisions
            chosen = (chosen >= self.thresholds.to(pixels.device)).float()
        return chosen

    @staticmethod
    def _logits(t: TeacherModel, pixels: torch.Tensor) -> torch.Tensor:
        p = t.preprocessing
        x = pixels if pixels.shape[-1] == p.image_size else F.interpolate(
            pixels, size=(p.image_size, p.image_size), mode="bilinear", antialias=True, align_corners=False)
        mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (p.mean, p.std))
        cuda = x.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext():
            return t.model((x - mean) / std)

    def targets(self, pixels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The student's targets for `pixels`: labelled rows mix their labels and the teacher's
        probabilities by hard_weight; rows with unknown labels (any NaN) take the teacher's alone."""
        teacher = self.probs(pixels)
        known = ~torch.isnan(targets).any(dim=1, keepdim=True)
        mixed = self.hard_weight * torch.nan_to_num(targets) + (1 - self.hard_weight) * teacher
        return torch.where(known, mixed, teacher)
