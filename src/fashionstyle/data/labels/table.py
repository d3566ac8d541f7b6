"""LabelTable, the one in-memory form of every label file, and its train/val splits.

    table.split("val")                                   # the rows of one split
    is_val = stratified_split(table.targets, 0.15, seed=0)   # a seeded split, stratified by rarest label
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.rows import SPLITS


@dataclass
class LabelTable:
    """Images with their labels: the one in-memory form of every label file."""

    label_names: list[str]
    ids: list[str]
    images: list[Path]
    targets: np.ndarray | None = None  # (N, L) uint8 (float32 soft targets for distillation); None: unlabelled
    splits: list[str] | None = None
    source: str = ""
    line_numbers: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> "LabelTable":
        index = [int(i) for i in index]
        pick = lambda seq: [seq[i] for i in index] if seq else seq  # noqa: E731
        targets = None if self.targets is None else self.targets[index]
        return LabelTable(self.label_names, pick(self.ids), pick(self.images), targets,
                          pick(self.splits), self.source, pick(self.line_numbers))

    def with_labels(self, columns: Sequence[int]) -> "LabelTable":
        """The same images with only some label columns (for single-label models)."""
        targets = self.require_targets()[:, list(columns)]
        names = [self.label_names[i] for i in columns]
        return LabelTable(names, self.ids, self.images, targets, self.splits, self.source, self.line_numbers)

    def split(self, name: str) -> "LabelTable":
        """Rows of one split (`train`, `val`, `test`), or all rows for `all`."""
        if name == "all":
            return self
        if name not in SPLITS:
            raise FashionStyleError(f"unknown split {name!r}; valid: all, {', '.join(SPLITS)}")
        if self.splits is None:
            raise FashionStyleError(f"{self.source}: has no split column to take {name!r} from; use --split all "
                                    "(every row) or a file with a split column")
        rows = [i for i, s in enumerate(self.splits) if s == name]
        if not rows:
            raise FashionStyleError(f"{self.source}: no rows in split {name!r}")
        return self.subset(rows)

    def require_targets(self) -> np.ndarray:
        if self.targets is None:
            raise FashionStyleError(f"{self.source}: has no labels (a list of images: id,url or one path a line)")
        return self.targets


def rarest_label_groups(targets: np.ndarray) -> np.ndarray:
    """Each row's rarest positive label (column index); L for a row without positives."""
    counts = targets.sum(axis=0)
    rarity = np.where(targets > 0, counts[None, :], np.iinfo(np.int64).max)
    return np.where(targets.any(axis=1), rarity.argmin(axis=1), targets.shape[1])


def stratified_split(targets: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Seeded train/val split, stratified by each image's rarest positive label.

    Returns a bool mask of validation rows. Each group (images whose rarest label
    is the same) sends every k-th member to validation, so every label keeps
    about `val_fraction` of its positives there.
    """
    if not 0.0 < val_fraction < 1.0:
        raise FashionStyleError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    group = rarest_label_groups(targets)
    is_val = np.zeros(len(targets), dtype=bool)
    for g in np.unique(group):
        members = rng.permutation(np.flatnonzero(group == g))
        ranks = np.arange(len(members))
        offset = rng.random()
        picked = np.floor((ranks + 1) * val_fraction + offset) > np.floor(ranks * val_fraction + offset)
        is_val[members[picked]] = True
    return is_val
