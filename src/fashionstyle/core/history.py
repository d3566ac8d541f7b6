"""A run's per-epoch history (`RUN/history.csv`) and the metric that picks its best epoch.

    rows = read_history(run)          # [{"epoch": "0", "val_fbeta_tuned": "0.61", ...}, ...]
    append_history(run, {"epoch": 3, MONITOR: 0.64, ...})

Light on purpose (no torch, no Lightning): the report and the label-wise selection
read histories without importing the training engine.
"""
from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from fashionstyle.core import atomic

if TYPE_CHECKING:
    from fashionstyle.core.run import RunDir

MONITOR = "val_fbeta_tuned"  # validation macro F-beta at thresholds tuned on it: picks the best epoch


def read_history(run: RunDir) -> list[dict[str, str]]:
    """The rows of `RUN/history.csv` as strings ([] when the run has none, e.g. a fused run)."""
    path = run / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def append_history(run: RunDir, row: dict[str, Any]) -> None:
    """Rewrite history.csv with `row` replacing any row of the same or a later epoch."""
    rows = [r for r in read_history(run) if int(r["epoch"]) < row["epoch"]] + [row]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(run / "history.csv", out.getvalue())
