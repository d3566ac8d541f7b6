"""Advisory file locks (fcntl.flock), so that two processes never write one thing at once.

    with file_lock(run / ".lock", what=f"the run folder {run}"):                   # held: one-line error
    with file_lock(cache / ".lock", what=f"the image cache {cache}", wait=True):    # wait for the holder
    with file_lock(out_lock, what=f"--out {out}", wait=60.0, on_wait=say_waiting):   # wait at most 60 s
    reading = hold_shared(data_file)          # readers of a file: remove_if_unused(data_file) leaves it alone

A lock belongs to an open file, so the kernel releases it when its process ends,
however it ends: a killed process leaves no stale lock. The lock file itself stays
in place (removing it would let two processes lock two files of one name); an
exclusive holder writes its process id into it, which the error message names.
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

from fashionstyle.core.errors import FashionStyleError

POLL_S = 0.1  # how often a waiting process with a time limit tries again


@contextmanager
def file_lock(path: str | Path, what: str, wait: bool | float = False, shared: bool = False,
              on_wait: Callable[[], None] | None = None) -> Iterator[Path]:
    """Hold a lock on `path` (created if missing; its folder must exist) for the `with` block.

    `what` names the thing guarded, for the message. `wait`: False, refuse at once with a
    FashionStyleError when another process holds it; True, wait as long as it takes; a number,
    wait at most that many seconds. `shared`: a reader's lock, held by any number of readers at
    once but never beside an exclusive one. `on_wait` is called once, when the lock is busy and
    the caller waits (to say so).
    """
    path = Path(path)
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - closed in `finally`, which releases the lock
    except OSError as err:
        raise FashionStyleError(f"{what}: cannot make its lock file {path} ({err.strerror})") from None
    try:
        _acquire(handle, path, what, wait, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, on_wait)
        if not shared:
            _write_holder(handle)
        yield path
    finally:
        handle.close()


def _acquire(handle: IO[bytes], path: Path, what: str, wait: bool | float, mode: int,
             on_wait: Callable[[], None] | None) -> None:
    if _try(handle, mode):
        return
    if wait is False:
        raise FashionStyleError(f"{what} is in use by another process{_holder(path)}; wait for it to finish, "
                                f"or use another (lock file {path})")
    if on_wait is not None:
        on_wait()
    if wait is True:
        fcntl.flock(handle, mode)
        return
    deadline = time.monotonic() + float(wait)
    while not _try(handle, mode):
        if time.monotonic() >= deadline:
            raise FashionStyleError(f"{what} is still in use by another process{_holder(path)} after "
                                    f"{float(wait):g} s (lock file {path})")
        time.sleep(POLL_S)


def _try(handle: IO[bytes], mode: int) -> bool:
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(handle: IO[bytes]) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()


def _holder(path: Path) -> str:
    """" (pid N)" from the lock file, when its holder wrote one."""
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def hold_shared(path: str | Path) -> IO[bytes]:
    """An open handle on the existing file `path` holding a shared lock on it: while it is open,
    `remove_if_unused(path)` in any process leaves the file alone. Close it to let go.

    Raises FileNotFoundError when `path` is missing, or was removed before the lock was taken.
    """
    handle = open(path, "rb")  # noqa: SIM115 - the caller closes it
    try:
        fcntl.flock(handle, fcntl.LOCK_SH)
        if os.fstat(handle.fileno()).st_ino != os.stat(path).st_ino:  # removed (and made again) meanwhile
            raise FileNotFoundError(2, "No such file or directory", str(path))
    except BaseException:
        handle.close()
        raise
    return handle


def remove_if_unused(path: str | Path) -> bool:
    """Delete `path` unless a process holds it with `hold_shared`; True when it was deleted (or was gone)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return True
    with handle:
        if not _try(handle, fcntl.LOCK_EX):
            return False
        Path(path).unlink(missing_ok=True)
        return True
