"""Atomic file writes (a temporary file beside the target, fsync, then rename), and JSON reads.

A reader (or a run killed half-way) never sees a half-written file.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import FashionStyleError


def write_atomic(path: str | Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call `write(f)` on a temporary binary file, then move it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_leftovers(folder: str | Path) -> int:
    """Delete the temporary files of writes killed half-way under `folder`; how many."""
    leftovers = list(Path(folder).rglob(".*.part"))
    for part in leftovers:
        part.unlink(missing_ok=True)
    return len(leftovers)


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    return write_atomic(path, lambda f: np.savez(f, **arrays))


def read_json(path: str | Path, where: str = "the run directory") -> Any:
    """Parsed JSON, or FashionStyleError naming the missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FashionStyleError(f"{path}: missing from {where}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FashionStyleError(f"{path}: corrupt JSON ({err.msg}, line {err.lineno})") from None
