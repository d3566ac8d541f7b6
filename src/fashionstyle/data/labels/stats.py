"""Label imbalance: positives and negatives per label, the weighted BCE's weights A and B, and warnings
about labels that cannot be learned; counted while a label file streams past (bounded memory).

    print(label_stats(read_labels("labels.csv"), weight_power=0.5))   # the report's Table 1
    counts = count_labels("labels.csv")                                # `fashionstyle stats`: never holds the rows
    print(label_stats(counts.training_rows(), 0.5, shown=40)); label_warnings(counts)   # a few lines each
    pos_w, neg_w = loss_weights(train_targets, power=0.5)

Torch-free: the report and `fashionstyle stats` read it without the training engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.table import LabelTable
from fashionstyle.data.labels.read import label_rows

ALL_ROWS = "all"  # FileCounts' key for the rows of a file without a split column
NAMED = 5  # a warning names at most this many labels; more of one kind are counted in one line
SHOWN = 40  # `stats` lists this many labels (the rarest first past it) unless asked for all


@dataclass
class LabelCounts:
    """How many rows, and the positives of each label among them."""

    label_names: list[str]
    rows: int
    positives: np.ndarray  # (L,) int64

    @property
    def negatives(self) -> np.ndarray:
        return self.rows - self.positives

    @classmethod
    def of(cls, label_names: Sequence[str], targets: np.ndarray) -> "LabelCounts":
        return cls(list(label_names), len(targets), targets.sum(axis=0).astype(np.int64))


@dataclass
class FileCounts:
    """A label file's LabelCounts per split (`train`, `val`, `test`; ALL_ROWS without a split column)."""

    source: str
    label_names: list[str]
    splits: dict[str, LabelCounts] = field(default_factory=dict)
    unlabelled: int = 0  # rows without any positive
    has_splits: bool = False

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.splits.values())

    def training_rows(self) -> tuple[LabelCounts, str]:
        """The counts of the train split (all rows without a split column), and what they cover."""
        if self.has_splits and "train" in self.splits:
            return self.splits["train"], "train split"
        return self._merged(), "all rows"

    def _merged(self) -> LabelCounts:
        positives = sum((c.positives for c in self.splits.values()), np.zeros(len(self.label_names), np.int64))
        return LabelCounts(self.label_names, self.rows, positives)

    @classmethod
    def of_table(cls, table: LabelTable) -> "FileCounts":
        targets = table.require_targets()
        counts = cls(table.source, table.label_names, unlabelled=int((targets.sum(axis=1) == 0).sum()),
                     has_splits=table.splits is not None)
        if table.splits is None:
            counts.splits[ALL_ROWS] = LabelCounts.of(table.label_names, targets)
        for name in dict.fromkeys(table.splits or ()):
            rows = np.flatnonzero(np.array(table.splits) == name)
            counts.splits[name] = LabelCounts.of(table.label_names, targets[rows])
        return counts


def count_labels(path: str | Path, images: str | Path | None = None,
                 label_names: Sequence[str] | None = None, chunk_rows: int = 65536) -> FileCounts:
    """A label file's counts per split, counted while its rows stream past (at most `chunk_rows` rows'
    flags are held at a time)."""
    reader, rows = label_rows(path, images, label_names)
    if not reader.labelled:
        raise FashionStyleError(f"{reader.source}: has no labels (an id,url list)")
    counts = FileCounts(str(reader.source), reader.label_names, has_splits=reader.has_splits)
    pending: dict[str, bytearray] = {}
    for row in rows:
        buffer = pending.setdefault(row.split or ALL_ROWS, bytearray())
        buffer += row.flags
        if len(buffer) >= chunk_rows * len(reader.label_names):
            _add_flags(counts, row.split or ALL_ROWS, buffer)
    for key, buffer in pending.items():
        _add_flags(counts, key, buffer)
    return counts


def _add_flags(counts: FileCounts, split: str, buffer: bytearray) -> None:
    """Add one split's pending rows of flags (one byte per label) to `counts`, and empty the buffer."""
    flags = np.frombuffer(bytes(buffer), np.uint8).reshape(-1, len(counts.label_names))
    buffer.clear()
    if split not in counts.splits:
        counts.splits[split] = LabelCounts(counts.label_names, 0, np.zeros(len(counts.label_names), np.int64))
    counts.splits[split].rows += len(flags)
    counts.splits[split].positives += flags.sum(axis=0, dtype=np.int64)
    counts.unlabelled += int((~flags.any(axis=1)).sum())


def label_warnings(labels: LabelTable | FileCounts, named: int = NAMED) -> list[str]:
    """Plain warning lines about labels that cannot be learned or tuned, and rows without labels: one
    line per label while a kind holds at most `named` labels, past that one line per kind with the count
    and the first `named` names (a file of 50,000 labels warns in a few lines, not 50,000).

    The train split is the file's `train` rows, or all rows when it has no split column.
    """
    if isinstance(labels, LabelTable):
        if labels.targets is None or not len(labels):
            return []
        labels = FileCounts.of_table(labels)
    names, warnings = np.array(labels.label_names, dtype=object), []
    for split in ("train", "val"):
        counts = labels.splits.get(split if labels.has_splits or split == "val" else ALL_ROWS)
        if counts is None or not counts.rows:
            continue
        why, whys = (("cannot be learned", "they cannot be learned") if split == "train"
                     else ("its threshold cannot be tuned", "their thresholds cannot be tuned"))
        for side, count in (("positives", counts.positives), ("negatives", counts.negatives)):
            empty = names[count == 0]
            if len(empty) <= named:
                warnings += [f"{labels.source}: label {n} has no {side} in the {split} split: {why}" for n in empty]
            else:
                first = ", ".join(empty[:named])
                warnings.append(f"{labels.source}: {len(empty):,} of {len(names):,} labels have no {side} in the "
                                f"{split} split ({first}, ...): {whys}; "
                                "`fashionstyle stats --all` lists them")
    if labels.unlabelled:
        warnings.append(f"{labels.source}: {labels.unlabelled} of {labels.rows} rows have no label at all "
                        "(negatives for every label)")
    return warnings


def label_counts(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives per label of a (N, L) 0/1 array."""
    positives = targets.sum(axis=0).astype(np.int64)
    return positives, len(targets) - positives


def loss_weights(targets: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray]:
    """The A (positive) and B (negative) weight of every label; see model/losses.py.

    A label without positives (or negatives) in training gets A = B = 1.
    """
    return weights_of_counts(*label_counts(targets), power)


def weights_of_counts(positives: np.ndarray, negatives: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray]:
    """loss_weights from the positives and negatives per label."""
    if power < 0:
        raise FashionStyleError(f"weight_power must be >= 0, got {power}")
    odds = np.divide(negatives, positives, out=np.ones(len(positives)),
                     where=(positives > 0) & (negatives > 0))
    scaled = odds ** power
    return 2 * scaled / (1 + scaled), 2 / (1 + scaled)


def label_stats(labels: LabelTable | LabelCounts, weight_power: float, shown: int | None = None) -> str:
    """The report's Table 1: positives, negatives, ratio and A/B loss weights per label; all its rows, or
    the first `shown` and a line saying how many were left out."""
    if isinstance(labels, LabelTable):
        labels = LabelCounts.of(labels.label_names, labels.require_targets())
    positives, negatives = labels.positives, labels.negatives
    pos_w, neg_w = weights_of_counts(positives, negatives, weight_power)
    listed = len(labels.label_names) if shown is None else min(shown, len(labels.label_names))
    width = max((len(n) for n in labels.label_names[:listed]), default=5) + 2
    lines = [f"{'label':<{width}}{'positives':>10}{'negatives':>10}{'pos:neg':>12}{'A':>9}{'B':>9}"]
    for name, p, q, a, b in zip(labels.label_names[:listed], positives, negatives, pos_w, neg_w):
        mark = "  NO POSITIVES: cannot be learned" if p == 0 else "  NO NEGATIVES: cannot be learned" if q == 0 else ""
        lines.append(f"{name:<{width}}{p:>10d}{q:>10d}{ratio_text(p, q):>12}{a:>9.4f}{b:>9.4f}{mark}")
    if listed < len(labels.label_names):
        lines += [f"... {len(labels.label_names) - listed:,} more labels left out (pass --all to list every label)",
                  totals_line(labels)]
    return "\n".join(lines)


def totals_line(labels: LabelCounts) -> str:
    """One line over every label: how many, how many without positives or negatives, positives per label."""
    p = labels.positives
    return (f"all {len(p):,} labels: {int((p == 0).sum()):,} without positives, "
            f"{int((labels.negatives == 0).sum()):,} without negatives; positives per label: min {int(p.min())}, "
            f"median {float(np.median(p)):g}, max {int(p.max())}")


def stats_report(path: str | Path, images: str | Path | None = None, label_names: Sequence[str] | None = None,
                 weight_power: float = 0.5, shown: int | None = SHOWN) -> tuple[list[str], str]:
    """`fashionstyle stats`: (warning lines, the text: a summary line and Table 1 of the train split, or of
    every row without a split column, its first `shown` labels (None: all)), counted while the file
    streams past."""
    counts = count_labels(path, images, label_names)
    train, scope = counts.training_rows()
    summary = f"{counts.source}: {train.rows} images ({scope}), {len(counts.label_names)} labels"
    return label_warnings(counts), summary + "\n" + label_stats(train, weight_power, shown)


def ratio_text(positives: int, negatives: int) -> str:
    """`1:12` when negatives dominate, `10:1` when positives do."""
    if positives == 0 or negatives == 0:
        return f"{positives}:{negatives}"
    if positives >= negatives:
        return f"{positives / negatives:.0f}:1"
    return f"1:{negatives / positives:.0f}"
