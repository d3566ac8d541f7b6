"""A run's per-epoch history (`RUN/history.csv`) and the metric that picks its best epoch.

    rows = read_history(run)          # [{"epoch": "1", "val_fbeta_epoch_exact": "0.61", ...}, ...]
    append_history(run, {"epoch": 3, MONITOR: 0.64, ...})
    history_labels(names, val_positives)  # the labels with a per-epoch `fbeta_<name>` column
    final_metrics(run)                # {"val_macro_f2": 0.58, ...}: the run's final scores (summary.json)

Each epoch is judged at thresholds tuned exactly on that epoch's validation probabilities: its name
says so (`val_fbeta_epoch_exact`), apart from the run's final scores, taken at the thresholds its
rule chose (`val_macro_f2`, core/summary.py). Light on purpose (no torch, no Lightning): the report
and the label-wise selection read histories without importing the training engine.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core.summary import read_summary

if TYPE_CHECKING:
    from fashionstyle.core.run import RunDir

# validation macro F-beta of one epoch at thresholds tuned exactly on it: picks the best epoch
MONITOR = "val_fbeta_epoch_exact"
OLD_NAMES = {"val_fbeta_tuned": MONITOR}  # the column's name in runs written before it was renamed
PER_LABEL = 1000  # per-epoch per-label scores (history.csv, trackers) of at most this many labels


def history_labels(label_names: Sequence[str], support: np.ndarray | None = None,
                   limit: int | None = PER_LABEL) -> list[str]:
    """The labels whose F-beta each epoch records: all of them up to `limit` (None: no limit), else the
    `limit` with the most validation positives (`support`, (L,); without it the first), in file order."""
    if limit is None or len(label_names) <= limit:
        return list(label_names)
    if support is None:
        return list(label_names[:limit])
    order = np.argsort(-np.asarray(support, np.int64), kind="stable")  # signed: a uint8 sum negates wrongly
    return [label_names[i] for i in sorted(order[:limit])]


def read_history(run: RunDir) -> list[dict[str, str]]:
    """The rows of `RUN/history.csv` as strings ([] when the run has none, e.g. a fused run)."""
    if not (run / "history.csv").is_file():
        return []
    return run.read_once("history.csv", lambda rows, _: rows, read=_read_rows)


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [{OLD_NAMES.get(k, k): v for k, v in row.items()} for row in csv.DictReader(f)]


def append_history(run: RunDir, row: dict[str, Any]) -> None:
    """Rewrite history.csv with `row` replacing any row of the same or a later epoch."""
    rows = [r for r in read_history(run) if int(r["epoch"]) < row["epoch"]] + [row]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(run / "history.csv", out.getvalue())


def final_metrics(run: RunDir) -> dict[str, float]:
    """The run's final scores under their one name each (`val_macro_f2`, `test_f2/Casual`, ...), from
    RUN/summary.json; {} for a run without one."""
    summary = read_summary(run)
    return summary.metrics() if summary is not None else {}
