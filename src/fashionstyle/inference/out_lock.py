"""One writer per prediction output: a lock file `.OUT.lock` beside it, held while `predict` writes.

    with out_lock(Path("tags.csv")):      # FashionStyleError at once if another predict holds it
        ...                               # prepare the parts, predict, merge

The lock is core.locks.file_lock's (advisory, released by the system when its holder dies,
so a killed run never blocks the next one). Its hidden file stays beside the output, as
core/locks.py wants (removing it would let two processes lock two files of one name).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.locks import file_lock


def lock_path(out: str | Path) -> Path:
    out = Path(out)
    return out.parent / f".{out.name}.lock"


@contextlib.contextmanager
def out_lock(out: str | Path) -> Iterator[None]:
    """Hold the output's lock for the block; refuse at once, in one line, when another process holds it."""
    out, path = Path(out), lock_path(out)
    try:  # a read-only folder or a full disk: an OSError named by the output, as any write to it would be
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666))
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(out)) from None
    held = contextlib.ExitStack()
    try:
        held.enter_context(file_lock(path, what=f"--out {out}"))
    except FashionStyleError:
        raise FashionStyleError(f"another predict is writing {out} (it holds {path}); wait for it to finish, "
                                f"or give this one another --out") from None
    with held:
        yield
