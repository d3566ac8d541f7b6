"""Experiment trackers: where a training run's settings, per-epoch metrics and final thresholds go.

    fashionstyle train ... --logger csv --logger tensorboard --logger mlflow --logger wandb

csv and tensorboard write under RUN/logs (the default). mlflow logs to `--mlflow-uri`, or
$MLFLOW_TRACKING_URI, or a local store `./mlflow.db` (SQLite, MLflow's own default; artefacts in
./mlruns; `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows it); wandb runs offline
(files under RUN/logs/wandb, `wandb sync` uploads them) unless WANDB_API_KEY is set. Each tracker
gets the resolved config, every epoch's losses and validation F-beta (overall and per label),
and at the end the tuned thresholds, the best epoch's scores and the model card.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Sequence

import lightning as L

from fashionstyle.core import atomic
from fashionstyle.core.config import TRACKERS, TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir

DEFAULT_TRACKERS = tuple(TrainConfig().logger)  # csv, tensorboard
TRACKER_IDS = "logs/trackers.json"  # the MLflow / W&B run ids of this run, so that --resume continues them


def csv_logger(run: RunDir, name: str, mlflow_uri: str) -> Any:
    return L.pytorch.loggers.CSVLogger(run.path, name="logs", version="csv")


def tensorboard_logger(run: RunDir, name: str, mlflow_uri: str) -> Any:
    return L.pytorch.loggers.TensorBoardLogger(run.path, name="logs", version="tensorboard")


def mlflow_logger(run: RunDir, name: str, mlflow_uri: str) -> Any:
    uri = mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"
    try:
        logger = L.pytorch.loggers.MLFlowLogger(experiment_name="fashionstyle", run_name=name, tracking_uri=uri,
                                                run_id=_tracker_ids(run).get("mlflow"))
        _save_tracker_id(run, "mlflow", logger.run_id)  # creates the MLflow run now; a resume continues it
        return logger
    except ModuleNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - a store MLflow refuses (an old ./mlruns folder, a bad URI)
        raise FashionStyleError(f"--logger mlflow: tracking store {uri} refused "
                                f"({str(err).splitlines()[0][:200]})") from None


def wandb_logger(run: RunDir, name: str, mlflow_uri: str) -> Any:
    (run / "logs").mkdir(parents=True, exist_ok=True)
    offline = not os.environ.get("WANDB_API_KEY")
    run_id = _tracker_ids(run).get("wandb") or uuid.uuid4().hex[:8]  # a resume continues the same W&B run
    _save_tracker_id(run, "wandb", run_id)
    return L.pytorch.loggers.WandbLogger(project="fashionstyle", name=name, save_dir=str(run / "logs"),
                                         offline=offline, id=run_id, resume="allow")


def _tracker_ids(run: RunDir) -> dict[str, str]:
    path = run / TRACKER_IDS
    return atomic.read_json(path) if path.is_file() else {}


def _save_tracker_id(run: RunDir, tracker: str, run_id: str) -> None:
    atomic.write_json(run / TRACKER_IDS, {**_tracker_ids(run), tracker: run_id})


def make_loggers(names: Sequence[str], run: RunDir, mlflow_uri: str = "") -> list[Any]:
    """One Lightning logger per tracker name, in order. A tracker asked for whose package is missing
    fails in one line; tensorboard left in the default list is skipped then. MLflow and W&B run on
    rank 0 only (their stores are not for several writers; Lightning logs from rank 0 anyway)."""
    from fashionstyle.core.ranks import is_secondary_process

    loggers = []
    for name in dict.fromkeys(names):  # each once
        tracker = TRACKERS.check(name)
        if name in ("mlflow", "wandb") and is_secondary_process():
            continue
        try:
            loggers.append(tracker.load()(run, run.path.name, mlflow_uri))
        except ModuleNotFoundError:
            if tuple(names) == DEFAULT_TRACKERS and name != "csv":
                continue  # not asked for by name
            raise FashionStyleError(f"--logger {name} needs {tracker.value}, which is not installed; "
                                    f"pip install {tracker.value}") from None
    return loggers


def log_results(loggers: Sequence[Any], run: RunDir) -> None:
    """The tuned thresholds, the kept epoch's per-label scores and the model card, to every tracker."""
    names, tuner = run.label_names(), run.thresholds()
    final = {f"threshold/{n}": float(t) for n, t in zip(names, tuner.thresholds_)}
    best = run.manifest().get("best_epoch")
    if best:
        final["best_epoch"] = float(best)
    for logger in loggers:
        logger.log_metrics(final)
        _log_files(logger, [run / "thresholds.json", run / "MODEL_CARD.md", run / "config.yaml"])
        logger.finalize("success")


def _log_files(logger: Any, files: Sequence[Path]) -> None:
    """Attach run files where the tracker keeps artefacts (MLflow, W&B)."""
    present = [str(f) for f in files if f.is_file()]
    if isinstance(logger, L.pytorch.loggers.MLFlowLogger):
        for path in present:
            logger.experiment.log_artifact(logger.run_id, path)
    elif isinstance(logger, L.pytorch.loggers.WandbLogger):
        for path in present:
            logger.experiment.save(path, base_path=str(Path(path).parent), policy="now")
