"""The MLflow store checked before a run folder is made: reachable and writable, each failure one line
naming its cause (no minutes of retries, no half-made run).

    check_mlflow_store(mlflow_uri("sqlite:////proc/x.db"))
    # FashionStyleError: --logger mlflow: cannot write the tracking store sqlite:////proc/x.db: ...
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.training.trackers.base import check_reachable

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
