"""The MLflow tracker: to `--mlflow-uri`, or $MLFLOW_TRACKING_URI, or a local store ./mlflow.db (SQLite,
MLflow's own default; artefacts in mlruns/ beside it; `mlflow ui --backend-store-uri sqlite:///mlflow.db`
shows it). The run's settings and epochs as they come; at the end the card, the run folder and a pyfunc
model with a signature (`mlflow.pyfunc.load_model(uri).predict(frame)`), registered as a new version of
`--register NAME` with `--alias` pointing at it; after `evaluate` or `tune`, the new scores, the report's
figures, the operating points and the card in the same MLflow run (by id: a finished run accepts them).
`mlflow_line` is what `train` prints of it. The store is checked before the run folder is made
(check_mlflow_store).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator
from typing import Sequence
from urllib.parse import urlparse

from fashionstyle.core.config import TRACKERS, read_yaml
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.training.trackers.base import Tracker, run_files, save_tracker_ids, tracker_ids
from fashionstyle.training.trackers.base import check_reachable


@TRACKERS.implements("mlflow")
class MlflowTracker(Tracker):
    module = "mlflow"
    rank_zero_only = True

    def check(self, uri: str) -> None:
        check_mlflow_store(mlflow_uri(uri))

    def logger(self, run: RunDir, name: str, uri: str) -> Any:
        import lightning as L

        uri = mlflow_uri(uri)
        ids = tracker_ids(run)
        same_store = ids.get("mlflow_uri", uri) == uri  # a resume into another store starts a new MLflow run there
        try:
            logger = L.pytorch.loggers.MLFlowLogger(experiment_name="fashionstyle", run_name=name, tracking_uri=uri,
                                                    run_id=ids.get("mlflow") if same_store else None,
                                                    artifact_location=artifacts_beside(uri))
            save_tracker_ids(run, mlflow=logger.run_id, mlflow_uri=uri)  # creates the MLflow run now
            return logger
        except ModuleNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - a store MLflow refuses (an old ./mlruns folder, a bad URI)
            raise FashionStyleError(f"--logger mlflow: tracking store {uri} refused "
                                    f"({str(err).splitlines()[0][:200]})") from None

    def finish(self, logger: Any, run: RunDir, final: dict[str, float]) -> None:
        _log_run_files(logger, run)

    def refresh(self, run: RunDir, ids: dict[str, str], metrics: dict[str, float], figures: list[Path]) -> bool:
        """The scores (each refresh one step later: MLflow shows the latest as the value), the figures, and the
        run's operating points with the card that lists them (`tune --operating-point` adds points)."""
        if "mlflow" not in ids or "mlflow_uri" not in ids:
            return False
        import mlflow

        client, run_id = mlflow.tracking.MlflowClient(tracking_uri=ids["mlflow_uri"]), ids["mlflow"]
        first = next(iter(metrics), None)
        step = len(client.get_metric_history(run_id, first)) if first else 0
        for name, value in metrics.items():
            client.log_metric(run_id, name, value, step=step)
        for path in figures:
            client.log_artifact(run_id, str(path), artifact_path="figures")
        for name in ("operating_points.json", "MODEL_CARD.md"):
            if (run / name).is_file():
                client.log_artifact(run_id, str(run / name))
        return True


def artifacts_beside(uri: str) -> str | None:
    """For a new experiment in an SQLite store, its artefacts in `mlruns/` beside the database file (not in
    whatever folder the command ran from); MLflow's default for other stores."""
    prefix = "sqlite:///"
    return str(Path(uri[len(prefix):]).resolve().parent / "mlruns") if uri.startswith(prefix) else None


def _log_run_files(logger: Any, run: RunDir) -> None:
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
    save_tracker_ids(run, mlflow_model=register or "", mlflow_version=version or "")
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


# The MLflow store checked before a run folder is made: reachable and writable, each failure one line
# naming its cause (no minutes of retries, no half-made run).
#
#     check_mlflow_store(mlflow_uri("sqlite:////proc/x.db"))
#     # FashionStyleError: --logger mlflow: cannot write the tracking store sqlite:////proc/x.db: ...
SQLITE_HEADER = b"SQLite format 3\x00"


def mlflow_uri(uri: str = "") -> str:
    """--mlflow-uri, else $MLFLOW_TRACKING_URI, else a local SQLite store ./mlflow.db (MLflow's own default)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def check_register(names: Sequence[str], register: str | None, alias: str | None) -> None:
    """Refuse, in one line, --register without --logger mlflow (the registry is MLflow's) and --alias
    without --register (an alias names a registered version)."""
    if register and "mlflow" not in names:
        raise FashionStyleError(f"--register {register}: registers the MLflow model, so it needs --logger mlflow")
    if alias and not register:
        raise FashionStyleError(f"--alias {alias}: names a registered model's version, so it needs --register NAME")


def check_mlflow_store(uri: str) -> None:
    """The store at `uri` can be written: a local SQLite file or folder store, or a server that answers."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        check_reachable(uri.rstrip("/") + "/health", f"--logger mlflow: the tracking server {uri}",
                        "start it or pass another --mlflow-uri")
    elif parsed.scheme == "sqlite":
        path = uri.split(":///", 1)[1] if ":///" in uri else ""
        if path and path != ":memory:":
            _check_sqlite_file(Path(path), uri)
    elif parsed.scheme in ("", "file") and len(parsed.scheme) != 1:  # a folder store (a Windows drive: no)
        _check_folder_store(Path(parsed.path if parsed.scheme == "file" else uri), uri)


def _check_sqlite_file(path: Path, uri: str) -> None:
    where = f"--logger mlflow: tracking store {uri}"
    if path.is_dir():
        raise FashionStyleError(f"{where}: {path} is a folder, not an SQLite file; remove it or pass "
                                "--mlflow-uri sqlite:///FILE")
    _check_writable_folder(path.parent, where)
    if path.exists():
        try:
            with path.open("r+b") as f:
                header = f.read(len(SQLITE_HEADER))
        except OSError as err:
            raise FashionStyleError(f"{where}: cannot write {path} ({err.strerror})") from None
        if header and header != SQLITE_HEADER:
            raise FashionStyleError(f"{where}: {path} is not an SQLite database; pass another --mlflow-uri")


def _check_folder_store(path: Path, uri: str) -> None:
    where = f"--logger mlflow: tracking store {uri}"
    if path.exists() and not path.is_dir():
        raise FashionStyleError(f"{where}: {path} is a file, not a folder store; pass --mlflow-uri "
                                "sqlite:///FILE.db for an SQLite store, or a folder")
    _check_writable_folder(path if path.is_dir() else path.parent, where)


def _check_writable_folder(folder: Path, where: str) -> None:
    if not folder.is_dir():
        raise FashionStyleError(f"{where}: the folder {folder} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fashionstyle-check-"):
            pass
    except OSError as err:
        raise FashionStyleError(f"{where}: cannot write in {folder} ({err.strerror or err})") from None
