"""Warnings about a finished run that looks normal but is not: RUN/warnings.json, shown by the CLI
table, the model card and the report. Torch-free.

    lines = training_warnings(read_history(run), thresholds, lr=1e6)   # [] for a healthy run
    write_warnings(run, lines); read_warnings(run)                     # RUN/warnings.json: {"warnings": [...]}
    summary = note_warnings(run, summary, config.lr)                   # all three, at the end of training

A training whose loss went non-finite or grew by orders of magnitude (it diverged), or whose
thresholds all collapsed to 0 (every label predicted for every image: the all-positive baseline),
or that barely beats that baseline (a weak run), finishes with a warning that names the cause and what
to change.
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
NEAR_BASELINE = 0.03  # macro F-beta this close to the all-positive baseline: a weak run
LOW_THRESHOLD = 0.05  # most thresholds under this: a weak run

__all__ = ["WARNINGS", "note_warnings", "read_warnings", "training_warnings", "weak_warning", "write_warnings"]


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


def weak_warning(score: float, baseline: float, thresholds: np.ndarray, split: str = "val") -> str | None:
    """A line when a run barely beats the all-positive baseline (within NEAR_BASELINE of macro F-beta) or most
    of its thresholds sit under LOW_THRESHOLD (it predicts most labels for most photos)."""
    thresholds = np.asarray(thresholds, np.float64)
    low = int((thresholds < LOW_THRESHOLD).sum())
    near = math.isfinite(score) and math.isfinite(baseline) and score - baseline < NEAR_BASELINE
    if not near and low * 2 <= thresholds.size:
        return None
    why = (f"{split} macro F-beta {score:.3f} is within {NEAR_BASELINE} of the all-positive baseline {baseline:.3f}"
           if near else f"{low} of {thresholds.size} thresholds are under {LOW_THRESHOLD}")
    return (f"a weak run: {why}; likely too few labelled photos or epochs for the model: try --recipe probe "
            "(a head on the ImageNet features, what --recipe auto picks under 1,000 photos), more labels, and for "
            "decisions an operating point with a precision floor (tune --operating-point NAME --min-precision 0.8)")


def training_warnings(history: Sequence[dict[str, Any]], thresholds: np.ndarray, lr: float | None = None,
                      summary: RunSummary | None = None) -> list[str]:
    """The warnings of a finished training (see the module docstring); [] for a healthy run."""
    lines = [line for line in (loss_warning(history, lr), threshold_warning(thresholds)) if line]
    if not lines and summary is not None and summary.val is not None:
        lines += [line for line in [weak_warning(summary.val.macro_fbeta, summary.val.all_positive_macro_fbeta,
                                                 thresholds)] if line]
    return lines


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
    lines = training_warnings(read_history(run), summary.thresholds, lr, summary)
    write_warnings(run, lines)
    if not lines:
        return summary
    summary = replace(summary, notes=[*summary.notes, *(f"warning: {line}" for line in lines)])
    write_summary(run, summary)
    return summary
