"""Atomic file writes (a temporary file beside the target, fsync, then rename), and JSON reads.

A reader (or a run killed half-way) never sees a half-written file. A new file gets the
permissions an ordinary write gives (0666 less the umask); a rewritten one keeps its mode.
A write that fails (permission denied, disk full) leaves the target as it was, no temporary
file behind, and raises an OSError that names the target. SIGTERM, SIGINT and SIGCHLD are
handled once the write is over (signals_deferred, below): torch.save aborts the process if interrupted.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
import signal
import stat
import threading
from pathlib import Path
from typing import Any, Callable
from typing import Any, Iterator

import numpy as np

from fashionstyle.core.errors import FashionStyleError


def write_atomic(path: str | Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call `write(f)` on a temporary binary file, then move it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # an error names the folder
    try:
        fd, tmp = open_temp(path)
    except OSError as err:
        raise _naming(err, path) from None
    try:
        with signals_deferred():  # a signal's handler runs once the file is whole
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if not isinstance(err, Exception):
            raise  # Ctrl-C or a stop (a deferred signal's handler) stays what it is
        cause = _write_error(err)
        if cause is not None and cause.filename in (None, tmp):
            raise _naming(cause, path) from None
        raise
    return path


FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}  # a write that ran out of room


def _write_error(err: BaseException) -> OSError | None:
    """The OSError of a failed write: `err`, or a full disk's behind it (torch.save, closing its zip
    writer, raises a RuntimeError while handling one)."""
    if isinstance(err, OSError):
        return err
    cause = err.__context__
    while cause is not None and not (isinstance(cause, OSError) and cause.errno in FULL):
        cause = cause.__context__
    return cause


def open_temp(path: Path) -> tuple[int, str]:
    """A new, empty temporary file beside `path` (as tempfile.mkstemp) with the mode an ordinary
    write would give `path`: an existing file's, else 0666 less the umask (mkstemp's is 0600)."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else None
    while True:
        tmp = str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.part"))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        if mode is not None:
            os.fchmod(fd, mode)
        return fd, tmp


def _naming(err: OSError, path: Path) -> OSError:
    """`err` naming the target, not the temporary file (nor no file, as a full disk's does)."""
    return err if err.errno is None else OSError(err.errno, err.strerror, str(path))


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


# Signals held back while a file is written, then handled as they would have been.
#
#     with signals_deferred():
#         torch.save(checkpoint, f)   # a SIGTERM or a dying loader worker (SIGCHLD) waits for the end
#
# A Python signal handler that raises part-way through `torch.save` (PyTorch's loader raises on
# SIGCHLD when a worker dies) aborts the whole process in PyTorch's zip writer instead of raising.
DEFERRED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGCHLD") if hasattr(signal, name))


@contextlib.contextmanager
def signals_deferred(signums: tuple[int, ...] = DEFERRED) -> Iterator[None]:
    """Record `signums` during the block; afterwards run their own handlers in the order received.

    Outside the main thread (where Python cannot set handlers) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: h for s in signums if (h := signal.getsignal(s)) is not None}
    received: list[int] = []
    for signum in previous:
        signal.signal(signum, lambda number, _frame: received.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        replay(received, previous)


def replay(received: list[int], handlers: dict[int, Any]) -> None:
    """Run each received signal's handler once, in order; the first error is raised after all ran."""
    first_error: BaseException | None = None
    for signum in dict.fromkeys(received):
        try:
            handle(signum, handlers[signum])
        except BaseException as err:  # noqa: BLE001 - raised below, once every handler has run
            first_error = first_error or err
    if first_error is not None:
        raise first_error


def handle(signum: int, handler: Any) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)  # the default action (SIGTERM ends the process)
