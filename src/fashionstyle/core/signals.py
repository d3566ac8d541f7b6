"""Signals held back while a file is written, then handled as they would have been.

    with signals_deferred():
        torch.save(checkpoint, f)   # a SIGTERM or a dying loader worker (SIGCHLD) waits for the end

A Python signal handler that raises part-way through `torch.save` (PyTorch's loader raises on
SIGCHLD when a worker dies) aborts the whole process in PyTorch's zip writer instead of raising.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

__all__ = ["signals_deferred"]

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
