"""A run's summary and the report's figures, sent to the tracker runs it was trained into (RUN/logs/trackers.json).

    update_trackers(run)            # after train, tune and evaluate: final val/test metrics, figures, and the
                                    # operating points (operating_points.json and the card that lists them)

Training logs per-epoch metrics, the model and the folder itself (training/trackers/); the figures
come from the report's own plotting (report_plots.py) and the test scores from `evaluate`, which
both sit above training, so they are added to the same MLflow run (by id, a finished run accepts
them) and the same W&B run (resumed offline by id; `wandb sync` merges them).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from fashionstyle.analysis import report_plots
from fashionstyle.analysis.report_data import RunData, load_run
from fashionstyle.core.run import RunDir
from fashionstyle.core.summary import RunSummary, run_summary
from fashionstyle.training.trackers.base import refresh_trackers, tracker_ids

FIGURES: dict[str, Callable[[RunData, Path], Path | None]] = {  # file name -> the report's plot
    "fbeta_per_label.png": report_plots.plot_fbeta_per_label,
    "fbeta_per_epoch.png": report_plots.plot_fbeta_per_epoch,
    "fbeta_vs_threshold.png": report_plots.plot_fbeta_vs_threshold,
    "pr_curves.png": report_plots.plot_pr_curves,
    "loss_lr.png": report_plots.plot_loss_lr,
}


def update_trackers(run: RunDir, summary: RunSummary | None = None, figures: bool = True,
                    metrics: bool = True) -> list[str]:
    """Log `summary` (default: the run's) as final metrics (unless not `metrics`: training logged them), and
    the report's figures, to the run's tracker runs; returns the trackers reached ([] for a run trained
    without MLflow or W&B)."""
    ids = tracker_ids(run)
    if not ids:
        return []
    if metrics and summary is None:
        summary = run_summary(run)
    values = summary.metrics() if metrics and summary is not None else {}
    with tempfile.TemporaryDirectory(prefix="fashionstyle-figures-") as temp:
        return refresh_trackers(run, ids, values, draw_figures(run, Path(temp)) if figures else [])


def draw_figures(run: RunDir, folder: Path) -> list[Path]:
    """The report's figures of `run` as PNG files in `folder` (those its files allow)."""
    data = load_run(run.path)
    drawn = [plot(data, folder / name) for name, plot in FIGURES.items()]
    return [path for path in drawn if path is not None]
