"""Which catalogue photos are labelled already, so that `suggest` never asks for them again.

    keys = labelled_images(run, ["more_labels.csv"])    # path_key of every labelled image
    path_key("catalogue/0001.jpg") in keys          # the same file by any name: links resolved
    content_key("a.jpg") == content_key("b.jpg")    # two files with the same bytes

The run's own label files count: its config's `labels` (each of them, for `train --labels A B`), read
with its `images` folder as training read it, or for a fused run those of the runs it fused (fusion.json). A file no longer found from
here is said in one line on stderr, since its photos may then be chosen again.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Iterable

from fashionstyle.core import atomic
from fashionstyle.core.run import RunDir
from fashionstyle.data.labels.read import TrainedOn, read_labels, trained_on_files


def path_key(path: str | Path) -> str:
    """How an image is recognised as already labelled: its absolute, normalised path, symbolic links
    resolved (a photo reached through a link is the photo it points to)."""
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def content_key(path: str | Path) -> str:
    """How identical photos are recognised whatever their names: the SHA-256 of their bytes (a file that
    cannot be read is only itself)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError:
        return f"unreadable:{path_key(path)}"
    return digest.hexdigest()


def learnt_from(run: RunDir) -> list[TrainedOn]:
    """The label files `run` learnt from: its config's (one or several), or those of the runs a fused run fused."""
    own = trained_on_files(run)
    if own:
        return own
    fusion = run / "fusion.json"
    if not fusion.is_file():
        return []
    return [f for source in atomic.read_json(fusion).get("runs", []) for f in learnt_from(RunDir(source))]


def labelled_images(run: RunDir, label_files: Iterable[str | Path] = ()) -> set[str]:
    """path_key of every image in the run's own label files (those still found) and in `label_files`."""
    files = [TrainedOn(Path(f)) for f in label_files]
    for own in learnt_from(run):
        if own.labels.is_file():
            files.append(own)
        else:
            print(f"warning: {run.path} learnt from {own.labels}, not found from here: its photos may be chosen "
                  "again; pass it as --labelled FILE", file=sys.stderr)
    keys: set[str] = set()
    for f in files:
        keys.update(path_key(p) for p in read_labels(f.labels, f.images).images)
    return keys
