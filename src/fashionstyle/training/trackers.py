"""Experiment trackers: where a training run's settings, per-epoch metrics, final scores and model go.

    fashionstyle train ... --logger csv --logger tensorboard --logger mlflow --logger wandb

csv and tensorboard write under RUN/logs (the default). mlflow logs to `--mlflow-uri`, or
$MLFLOW_TRACKING_URI, or a local store `./mlflow.db` (SQLite, MLflow's own default; artefacts in
./mlruns; `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows it); wandb runs offline
(files under RUN/logs/wandb, `wandb sync` uploads them) unless WANDB_API_KEY is set. Each tracker
gets the resolved config and every epoch's losses and validation F-beta at that epoch's exact
thresholds (`val_fbeta_epoch_exact`, overall and per label); at the end the run's summary as final
metrics (`val_macro_f2`, `val_f2/<label>`, `threshold/<label>`, and `test_...` once evaluated),
the run folder, a model (MLflow: a pyfunc model with a signature, `mlflow.pyfunc.load_model(uri).predict(frame)`,
registered as a new version of `--register NAME`, `--alias` pointing at it; W&B: a model artefact) and the
card. Stores are checked before the run folder is made (tracker_checks.py); `mlflow_line` is what `train`
prints of the MLflow run.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

import lightning as L

from fashionstyle.core import atomic
from fashionstyle.core.config import TRACKERS, TrainConfig, read_yaml
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.core.summary import RunSummary
from fashionstyle.training.tracker_checks import check_register, check_trackers, mlflow_uri, wandb_online

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
    """The card at the top, the run folder under `run/`, and a pyfunc model under `model` (registered when the
    run's config names `register`)."""
    client = logger.experiment
    for name in ("MODEL_CARD.md", "thresholds.json", "config.yaml"):
        if (run / name).is_file():
            client.log_artifact(logger.run_id, str(run / name))
    for path in run_files(run):
        folder = path.parent.relative_to(run.path)
        client.log_artifact(logger.run_id, str(path), artifact_path=str(Path("run") / folder))
    saved = read_yaml(run / "config.yaml") if (run / "config.yaml").is_file() else {}
    log_mlflow_model(tracker_ids(run)["mlflow_uri"], logger.run_id, run,
                     register=saved.get("register"), alias=saved.get("alias"))


def log_mlflow_model(uri: str, run_id: str, run: RunDir, register: str | None = None,
                     alias: str | None = None) -> str | None:
    """RUN as the pyfunc model `model` of the MLflow run `run_id`, with its signature and an input example;
    with `register`, a new version of that registered model (given `alias`, pointing at it). Returns the
    version registered (None: not registered); RUN/logs/trackers.json keeps it for `mlflow_line`."""
    import mlflow
    import pandas

    from fashionstyle.inference.mlflow_model import INPUT_EXAMPLE, RunModel, signature

    check_register(["mlflow"], register, alias)
    previous = mlflow.get_tracking_uri()  # MLflow's fluent API is global: the caller's setting is put back
    mlflow.set_tracking_uri(uri)
    try:
        with tempfile.TemporaryDirectory(prefix="fashionstyle-model-") as temp, quiet_mlflow(), \
                mlflow.start_run(run_id=run_id, log_system_metrics=False):
            folder = _copy_run_files(run, Path(temp) / run.path.name)
            info = mlflow.pyfunc.log_model(name="model", python_model=RunModel(), artifacts={"run": str(folder)},
                                           pip_requirements=["fashionstyle"], signature=signature(run.label_names()),
                                           input_example=pandas.DataFrame(INPUT_EXAMPLE))
        version = _register(uri, run_id, info, register, alias) if register else None  # reads `uri` globally too
    finally:
        mlflow.set_tracking_uri(previous)
    _save_tracker_ids(run, mlflow_model=register or "", mlflow_version=version or "")
    return version


def _register(uri: str, run_id: str, info: Any, name: str, alias: str | None) -> str:
    """A new version of the registered model `name` (made if new) from the logged model `info`."""
    from mlflow.exceptions import MlflowException

    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise FashionStyleError(f"--register {name}: the registry at {uri} refused it "
                                    f"({str(err).splitlines()[0][:200]})") from None
    version = client.create_model_version(name, source=info.model_uri, run_id=run_id, model_id=info.model_id)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's own noise while it logs a model: its CloudPickle warning and INFO lines, a pandas deprecation
    its input example code sets off, and its artefact download bar; every other warning (ours too) still
    shows. (Its type-hints warning is skipped where RunModel is defined.)"""
    import logging
    import warnings

    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    def not_cloudpickle(record: logging.LogRecord) -> bool:  # nor its INFO "Validating input example ..."
        return record.levelno >= logging.WARNING and "using CloudPickle" not in record.getMessage()

    loggers = [logging.getLogger(name) for name in ("mlflow.pyfunc", "mlflow.models.model")]
    before = os.environ.get(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name)
    os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = "false"
    for logger in loggers:
        logger.addFilter(not_cloudpickle)
    try:
        with warnings.catch_warnings():  # its input example's pandas 3 deprecation, from MLflow's own code
            warnings.filterwarnings("ignore", message="Operation with range is deprecated")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(not_cloudpickle)
        if before is None:
            os.environ.pop(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, None)
        else:
            os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = before


def mlflow_line(run: RunDir) -> str | None:
    """One line naming the MLflow run `run` logged to, its model URI, the registered version, and how to
    open the UI; None for a run not logged to MLflow."""
    ids = tracker_ids(run)
    if "mlflow" not in ids or "mlflow_uri" not in ids:
        return None
    run_id, uri = ids["mlflow"], ids["mlflow_uri"]
    registered = (f", registered as {ids['mlflow_model']} version {ids['mlflow_version']}"
                  if ids.get("mlflow_version") else "")
    ui = f"mlflow ui --backend-store-uri {uri}" if not uri.startswith(("http://", "https://")) else uri
    return f"MLflow run {run_id}: model runs:/{run_id}/model{registered}; tracking {uri} (open: {ui})"


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
