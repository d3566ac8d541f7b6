"""Warnings about a finished run that looks normal but is not: RUN/warnings.json, shown by the CLI
table, the model card and the report. Torch-free.

    lines = training_warnings(read_history(run), thresholds, lr=1e6)   # [] for a healthy run
    write_warnings(run, lines); read_warnings(run)                     # RUN/warnings.json: {"warnings": [...]}
    summary = note_warnings(run, summary, config.lr)                   # all three, at the end of training

A training whose loss went non-finite or grew by orders of magnitude (it diverged), or whose
thresholds all collapsed to 0 (every label predicted for every image: the all-positive baseline),
finishes with a warning that names the cause and the flag to change.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.history import read_history
from fashionstyle.core.summary import RunSummary, write_summary

if TYPE_CHECKING:
    from fashionstyle.core.run import RunDir

WARNINGS = "warnings.json"
GROWTH = 1e3  # a training loss this many times its first epoch's: diverged
HUGE = 1e4  # a loss above this (the losses' per-image means are a few units at worst when they learn): diverged
COLLAPSED = 1e-6  # a threshold at or below this predicts a label for (nearly) every image

__all__ = ["WARNINGS", "note_warnings", "read_warnings", "training_warnings", "write_warnings"]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def loss_warning(history: Sequence[dict[str, Any]], lr: float | None = None) -> str | None:
    """A line when some epoch's loss was infinite or above HUGE, or the training loss grew
    GROWTH-fold from the first epoch's (a NaN training loss beside a finite validation loss is an
    epoch without a step, every image unreadable: not a divergence)."""
    rows = [(int(_float(r.get("epoch"))), _float(r.get("train_loss")), _float(r.get("val_loss"))) for r in history]
    hint = f"; train again with a lower --lr (it was {lr:g})" if lr else "; train again with a lower --lr"
    for epoch, train, val in rows:
        if _blown(train, val):
            return f"the training diverged: the loss was {train:.3g} (validation {val:.3g}) in epoch {epoch}{hint}"
    finite = [(epoch, train) for epoch, train, _ in rows if math.isfinite(train)]
    if len(finite) < 2:
        return None
    (first_epoch, first), (epoch, worst) = finite[0], max(finite, key=lambda e: e[1])
    if first > 0 and worst > GROWTH * first and worst > 1.0:
        return (f"the training diverged: the training loss grew from {first:.3g} (epoch {first_epoch}) to "
                f"{worst:.3g} (epoch {epoch}){hint}")
    return None


def _blown(train: float, val: float) -> bool:
    """Losses of a diverged epoch: infinite, above HUGE, or NaN on both splits."""
    if math.isnan(train) and math.isnan(val):
        return True
    return any(math.isinf(v) or v > HUGE for v in (train, val) if not math.isnan(v))


def threshold_warning(thresholds: np.ndarray) -> str | None:
    """A line when every label's threshold collapsed to 0: each label predicted for every image."""
    thresholds = np.asarray(thresholds, np.float64)
    if thresholds.size == 0 or not (thresholds <= COLLAPSED).all():
        return None
    return (f"every threshold collapsed to 0 ({len(thresholds)} of {len(thresholds)} labels): the run predicts "
            "every label for every image, the all-positive baseline; it learnt nothing usable")


def training_warnings(history: Sequence[dict[str, Any]], thresholds: np.ndarray, lr: float | None = None) -> list[str]:
    """The warnings of a finished training (see the module docstring); [] for a healthy run."""
    return [line for line in (loss_warning(history, lr), threshold_warning(thresholds)) if line]


def write_warnings(run: RunDir, lines: Sequence[str]) -> None:
    """RUN/warnings.json ({"warnings": [...]}), or no file for a run without warnings."""
    path = run / WARNINGS
    if lines:
        atomic.write_json(path, {"warnings": list(lines)})
    elif path.is_file():
        path.unlink()


def read_warnings(run: RunDir) -> list[str]:
    """The run's warnings ([] when it has none, or the file is not a list of lines)."""
    path = run / WARNINGS
    if not path.is_file():
        return []
    try:
        lines = atomic.read_json(path).get("warnings", [])
    except (AttributeError, ValueError, OSError):
        return []
    return [str(line) for line in lines] if isinstance(lines, list) else []


def note_warnings(run: RunDir, summary: RunSummary, lr: float | None = None) -> RunSummary:
    """At the end of a training: RUN/warnings.json, and the summary with them as notes (so the card
    and the trackers show them too; the CLI prints them under its table)."""
    lines = training_warnings(read_history(run), summary.thresholds, lr)
    write_warnings(run, lines)
    if not lines:
        return summary
    summary = replace(summary, notes=[*summary.notes, *(f"warning: {line}" for line in lines)])
    write_summary(run, summary)
    return summary
