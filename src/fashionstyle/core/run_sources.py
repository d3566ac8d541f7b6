"""What else than a run folder may name a run: resolvers that upper layers register, asked by RunDir.open.

    register(resolve_hub)     # fashionstyle/__init__.py: hub folders and Hugging Face ids (inference/hub_resolve.py)
    path = resolve("user/mine")   # the run directory a resolver made of it, else the path unchanged

Kept here, below everything, so that core.run opens a hub folder without importing the layers
that rebuild it (model and inference import core, not the other way round).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

Resolver = Callable[["str | Path"], Path]  # a source -> the run directory it names (the path itself if none)
_RESOLVERS: list[Resolver] = []


def register(resolver: Resolver) -> None:
    """Ask `resolver` about every run RunDir.open is given (once per function)."""
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)


def resolve(source: "str | Path") -> Path:
    """The run directory `source` names: the first registered resolver's answer that differs from it."""
    for resolver in _RESOLVERS:
        found = Path(resolver(source))
        if found != Path(source):
            return found
    return Path(source)
