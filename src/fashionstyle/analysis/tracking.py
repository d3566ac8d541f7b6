"""A run's summary and the report's figures, sent to the tracker runs it was trained into (RUN/logs/trackers.json).

    update_trackers(run)            # after train, tune and evaluate: final val/test metrics, figures, and the
                                    # operating points (operating_points.json and the card that lists them)

Training logs per-epoch metrics, the model and the folder itself (training/trackers.py); the figures
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
from fashionstyle.training.tracker_checks import wandb_online
from fashionstyle.training.trackers import tracker_ids

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
    if not ({"mlflow", "wandb"} & set(ids)):
        return []
    if metrics and summary is None:
        summary = run_summary(run)
    values = summary.metrics() if metrics and summary is not None else {}
    with tempfile.TemporaryDirectory(prefix="fashionstyle-figures-") as temp:
        paths = draw_figures(run, Path(temp)) if figures else []
        reached = []
        if "mlflow" in ids and "mlflow_uri" in ids:
            _to_mlflow(ids["mlflow_uri"], ids["mlflow"], values, paths, _point_files(run))
            reached.append("mlflow")
        if "wandb" in ids:
            _to_wandb(run, ids["wandb"], values, paths)
            reached.append("wandb")
    return reached


def draw_figures(run: RunDir, folder: Path) -> list[Path]:
    """The report's figures of `run` as PNG files in `folder` (those its files allow)."""
    data = load_run(run.path)
    drawn = [plot(data, folder / name) for name, plot in FIGURES.items()]
    return [path for path in drawn if path is not None]


def _point_files(run: RunDir) -> list[Path]:
    """The run's operating points and the card that lists them (`tune --operating-point` adds points)."""
    return [run / name for name in ("operating_points.json", "MODEL_CARD.md") if (run / name).is_file()]


def _to_mlflow(uri: str, run_id: str, metrics: dict[str, float], figures: list[Path], files: list[Path]) -> None:
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    first = next(iter(metrics), None)  # each refresh one step later: MLflow shows the latest as the value
    step = len(client.get_metric_history(run_id, first)) if first else 0
    for name, value in metrics.items():
        client.log_metric(run_id, name, value, step=step)
    for path in figures:
        client.log_artifact(run_id, str(path), artifact_path="figures")
    for path in files:
        client.log_artifact(run_id, str(path))


def _to_wandb(run: RunDir, run_id: str, metrics: dict[str, float], figures: list[Path]) -> None:
    import wandb

    with wandb.init(project="fashionstyle", id=run_id, resume="allow", dir=str(run / "logs"),
                    mode="online" if wandb_online() else "offline", name=run.path.name,
                    settings=wandb.Settings(quiet=True)) as experiment:
        experiment.summary.update({**metrics, "operating_points": _point_lines(run)})
        experiment.log({f"figures/{path.stem}": wandb.Image(str(path)) for path in figures})


def _point_lines(run: RunDir) -> dict[str, str]:
    """Each operating point of the run in one line (name: objective, rules, labels out of reach)."""
    contents = run.contents()
    return {name: contents.point(name).describe(contents.label_names) for name in contents.point_names()}
