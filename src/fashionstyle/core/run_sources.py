"""What else than a run folder may name a run, asked by RunDir.open: each RUN_SOURCES entry (core/choices.py)
turns a source into the run directory it names, or gives it back unchanged.

    path = resolve("user/mine")   # the run directory a source made of it (inference/hub_resolve.py), else the path

Kept here, below everything, so that core.run opens a hub folder without importing the layers that rebuild
it: the table names the module, imported when a run is first opened.
"""
from __future__ import annotations

from pathlib import Path

from fashionstyle.core.choices import RUN_SOURCES


def resolve(source: "str | Path") -> Path:
    """The run directory `source` names: the first run source's answer that differs from it."""
    for name in RUN_SOURCES:
        found = Path(RUN_SOURCES.implementation(name)(source))
        if found != Path(source):
            return found
    return Path(source)
