"""Memory back to the system after a request that decoded large images.

glibc keeps what a thread freed in its arena, in pieces too scattered to shrink the heap, and raises
its threshold for mapping large blocks apart after the first is freed: after one request of 50 MP
PNGs the service stayed hundreds of MB above idle, and the next such request needed more on top.
`malloc_trim(0)` hands the free pages of every arena back. It costs a walk of the arenas, so it runs
only after requests over TRIM_ABOVE pixels; elsewhere (no glibc) it does nothing.
"""
from __future__ import annotations

import ctypes
import sys
from typing import Callable

TRIM_ABOVE = 4_000_000  # pixels a request decoded in all


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # the C library the process runs on
    except OSError:
        return None


_TRIM = _malloc_trim()


def release_after(pixels: int) -> bool:
    """Give freed memory back after a request that decoded `pixels` in all; whether it was tried."""
    if _TRIM is None or pixels <= TRIM_ABOVE:
        return False
    _TRIM(0)
    return True
