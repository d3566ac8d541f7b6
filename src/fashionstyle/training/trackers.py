"""Experiment trackers: where a training run's settings, per-epoch metrics, final scores and model go.

    fashionstyle train ... --logger csv --logger tensorboard --logger mlflow --logger wandb

csv and tensorboard write under RUN/logs (the default). mlflow logs to `--mlflow-uri`, or
$MLFLOW_TRACKING_URI, or a local store `./mlflow.db` (SQLite, MLflow's own default; artefacts in
./mlruns; `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows it); wandb runs offline
(files under RUN/logs/wandb, `wandb sync` uploads them) unless WANDB_API_KEY is set. Each tracker
gets the resolved config and every epoch's losses and validation F-beta at that epoch's exact
thresholds (`val_fbeta_epoch_exact`, overall and per label); at the end the run's summary as final
metrics (`val_macro_f2`, `val_f2/<label>`, `threshold/<label>`, and `test_...` once evaluated),
the run folder, a model (MLflow: a pyfunc model, `mlflow.pyfunc.load_model(uri).predict(frame)`;
W&B: a model artefact) and the card. Stores are checked before the run folder is made
(tracker_checks.py).
"""
from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Sequence

import lightning as L

from fashionstyle.core import atomic
from fashionstyle.core.config import TRACKERS, TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.core.summary import RunSummary
from fashionstyle.training.tracker_checks import check_trackers, mlflow_uri, wandb_online

DEFAULT_TRACKERS = tuple(TrainConfig().logger)  # csv, tensorboard
TRACKER_IDS = "logs/trackers.json"  # the MLflow / W&B run ids of this run (and MLflow's store): --resume continues them
LEFT_OUT = ("checkpoints", "logs")  # run sub-folders not sent as the run's artefact (resume state, logs)
WANDB_INIT_TIMEOUT_S = 30.0


@TRACKERS.implements("csv")
def csv_logger(run: RunDir, name: str, mlflow_uri: str) -> Any:
    return L.pytorch.loggers.CSVLogger(run.path, name="logs", version="csv")


@TRACKERS.implements("tensorboard")
def tensorboard_logger(run: RunDir, name: str, mlflow_uri: str) -> Any:
    return L.pytorch.loggers.TensorBoardLogger(run.path, name="logs", version="tensorboard")


@TRACKERS.implements("mlflow")
def mlflow_logger(run: RunDir, name: str, uri: str) -> Any:
    uri = mlflow_uri(uri)
    ids = tracker_ids(run)
    same_store = ids.get("mlflow_uri", uri) == uri  # a resume into another store starts a new MLflow run there
    try:
        logger = L.pytorch.loggers.MLFlowLogger(experiment_name="fashionstyle", run_name=name, tracking_uri=uri,
                                                run_id=ids.get("mlflow") if same_store else None,
                                                artifact_location=artifacts_beside(uri))
        _save_tracker_ids(run, mlflow=logger.run_id, mlflow_uri=uri)  # creates the MLflow run now
        return logger
    except ModuleNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - a store MLflow refuses (an old ./mlruns folder, a bad URI)
        raise FashionStyleError(f"--logger mlflow: tracking store {uri} refused "
                                f"({str(err).splitlines()[0][:200]})") from None


def artifacts_beside(uri: str) -> str | None:
    """For a new experiment in an SQLite store, its artefacts in `mlruns/` beside the database file (not in
    whatever folder the command ran from); MLflow's default for other stores."""
    prefix = "sqlite:///"
    return str(Path(uri[len(prefix):]).resolve().parent / "mlruns") if uri.startswith(prefix) else None


@TRACKERS.implements("wandb")
def wandb_logger(run: RunDir, name: str, mlflow_uri: str) -> Any:
    import wandb

    (run / "logs").mkdir(parents=True, exist_ok=True)
    run_id = tracker_ids(run).get("wandb") or uuid.uuid4().hex[:8]  # a resume continues the same W&B run
    _save_tracker_ids(run, wandb=run_id)
    return L.pytorch.loggers.WandbLogger(project="fashionstyle", name=name, save_dir=str(run / "logs"),
                                         offline=not wandb_online(), id=run_id, resume="allow",
                                         settings=wandb.Settings(init_timeout=WANDB_INIT_TIMEOUT_S, quiet=True))


def tracker_ids(run: RunDir) -> dict[str, str]:
    path = run / TRACKER_IDS
    return atomic.read_json(path) if path.is_file() else {}


def _save_tracker_ids(run: RunDir, **ids: str) -> None:
    atomic.write_json(run / TRACKER_IDS, {**tracker_ids(run), **ids})


def make_loggers(names: Sequence[str], run: RunDir, mlflow_uri: str = "") -> list[Any]:
    """One Lightning logger per tracker name, in order. A tracker asked for whose package is missing, or
    whose store cannot be used, fails in one line; tensorboard left in the default list is skipped then.
    MLflow and W&B run on rank 0 only (their stores are not for several writers)."""
    from fashionstyle.core.ranks import is_secondary_process

    loggers = []
    for name in dict.fromkeys(names):  # each once
        tracker = TRACKERS.check(name)
        if name in ("mlflow", "wandb") and is_secondary_process():
            continue
        try:
            check_trackers([name], mlflow_uri)
            loggers.append(TRACKERS.implementation(tracker.name)(run, run.path.name, mlflow_uri))
        except ModuleNotFoundError:
            if tuple(names) == DEFAULT_TRACKERS and name != "csv":
                continue  # not asked for by name
            raise FashionStyleError(f"--logger {name} needs {tracker.value}, which is not installed; "
                                    f"pip install {tracker.value}") from None
    return loggers


def log_results(loggers: Sequence[Any], run: RunDir, summary: RunSummary) -> None:
    """The run's summary as final metrics, its folder, its model and card, to every tracker; then close them."""
    final = summary.metrics()
    best = run.manifest().get("best_epoch")
    if best:
        final["best_epoch"] = float(best)
    for logger in loggers:
        logger.log_metrics(final)
        if isinstance(logger, L.pytorch.loggers.MLFlowLogger):
            _mlflow_files(logger, run)
        elif isinstance(logger, L.pytorch.loggers.WandbLogger):
            _wandb_files(logger, run, final)
        logger.finalize("success")


def run_files(run: RunDir) -> list[Path]:
    """The files of the run a tracker keeps: all but checkpoints, logs and each epoch's validation
    probabilities (a per-label run's epoch models stay: its members)."""
    return sorted(p for p in run.path.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.relative_to(run.path).parts[0] not in LEFT_OUT
                  and not (p.parent.name == "epochs" and p.suffix == ".npy"))


def _mlflow_files(logger: Any, run: RunDir) -> None:
    """The card at the top, the run folder under `run/`, and a pyfunc model under `model`."""
    client = logger.experiment
    for name in ("MODEL_CARD.md", "thresholds.json", "config.yaml"):
        if (run / name).is_file():
            client.log_artifact(logger.run_id, str(run / name))
    for path in run_files(run):
        folder = path.parent.relative_to(run.path)
        client.log_artifact(logger.run_id, str(path), artifact_path=str(Path("run") / folder))
    log_mlflow_model(tracker_ids(run)["mlflow_uri"], logger.run_id, run)


def log_mlflow_model(uri: str, run_id: str, run: RunDir) -> None:
    """RUN as the pyfunc model `model` of the MLflow run `run_id`."""
    import mlflow

    from fashionstyle.inference.mlflow_model import RunModel

    previous = mlflow.get_tracking_uri()  # MLflow's fluent API is global: the caller's setting is put back
    mlflow.set_tracking_uri(uri)
    try:
        with tempfile.TemporaryDirectory(prefix="fashionstyle-model-") as temp, \
                mlflow.start_run(run_id=run_id, log_system_metrics=False):
            folder = _copy_run_files(run, Path(temp) / run.path.name)
            mlflow.pyfunc.log_model(name="model", python_model=RunModel(), artifacts={"run": str(folder)},
                                    pip_requirements=["fashionstyle"])
    finally:
        mlflow.set_tracking_uri(previous)


def _copy_run_files(run: RunDir, folder: Path) -> Path:
    """A copy of RUN's `run_files` in `folder`: what predicting needs, without resume state or logs."""
    for path in run_files(run):
        target = folder / path.relative_to(run.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return folder


def _wandb_files(logger: Any, run: RunDir, final: dict[str, float]) -> None:
    """The card and settings as files, the final scores as the run's summary, the run folder as a model artefact."""
    import wandb

    experiment = logger.experiment
    for name in ("MODEL_CARD.md", "thresholds.json", "config.yaml"):
        if (run / name).is_file():
            experiment.save(str(run / name), base_path=str(run.path), policy="now")
    experiment.summary.update(final)
    artefact = wandb.Artifact(f"model-{experiment.id}", type="model", metadata={"run": str(run.path)})
    for path in run_files(run):
        artefact.add_file(str(path), name=str(path.relative_to(run.path)))
    experiment.log_artifact(artefact, aliases=["latest"])
