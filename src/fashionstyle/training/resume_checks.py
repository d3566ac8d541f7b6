"""What a `--resume` must find unchanged: the run's config and its data.

    data = data_fingerprint(train_table, val_table)   # written into the manifest when the run starts
    check_same_run(run, config, data)                 # a resume with other settings or data: refused
    write_config(run, config)                         # RUN/config.yaml, kept byte for byte on a resume
    rename_monitor_states(checkpoint)                 # an older run's best score kept under today's name
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core import config as config_lib
from fashionstyle.core.config import TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.history import OLD_NAMES
from fashionstyle.core.run import RunDir
from fashionstyle.data.labels.table import LabelTable

__all__ = ["check_same_run", "data_fingerprint", "rename_monitor_states", "write_config"]


def data_fingerprint(train: LabelTable, val: LabelTable) -> dict[str, Any]:
    """What a resume must find unchanged: the label names, each split's ids and labels."""
    digest = hashlib.sha256(json.dumps(train.label_names).encode("utf-8"))
    for part in (train, val):
        digest.update(json.dumps(part.ids).encode("utf-8"))
        targets = part.require_targets()  # 0/1, or a distilled run's soft targets (a memory map)
        kind = np.uint8 if np.issubdtype(targets.dtype, np.integer) else np.float32
        for start in range(0, len(targets), 65536):
            digest.update(np.ascontiguousarray(targets[start:start + 65536], dtype=kind).tobytes())
    return {"train_images": len(train), "val_images": len(val), "sha256": digest.hexdigest()[:16]}


def check_same_run(run: RunDir, config: TrainConfig, data: dict[str, Any], parts: str | None = None) -> None:
    """Refuse to resume `run` with another config or other data than it was trained with; a run of
    finished `parts` (cv's folds, single mode's labels) keeps its epochs too, as those parts did."""
    saved = run / "config.yaml"
    if saved.is_file():
        then = config_lib.read_saved(saved)
        if parts and config.epochs != then.epochs:
            raise FashionStyleError(f"{run.path}: --resume keeps the {then.epochs} epochs its finished {parts} "
                                    f"trained, not {config.epochs}; drop --epochs, or train a new run into "
                                    "another --out")
        config_lib.check_resume(then, config, where=str(run.path))
    then = run.manifest().get("data")  # absent in runs of older versions
    if then is not None and then != data:
        raise FashionStyleError(
            f"{run.path}: --resume needs the data the run was trained on, and it changed (train/val images: "
            f"{then['train_images']}/{then['val_images']} then, {data['train_images']}/{data['val_images']} "
            "now; or their ids or labels); train a new run into another --out")


def write_config(run: RunDir, config: TrainConfig) -> None:
    """RUN/config.yaml; a resumed run keeps its own byte for byte, unless it grew its epochs."""
    path = run / "config.yaml"
    if path.is_file():
        saved = config_lib.read_saved(path)
        config = dataclasses.replace(config, **{k: getattr(saved, k) for k in config_lib.RESUME_FREE})
        if config == saved:
            return
    atomic.write_text(path, config_lib.dump(config))


def rename_monitor_states(checkpoint: dict[str, Any]) -> None:
    """Callback states of a checkpoint written before the monitor was renamed (history.OLD_NAMES),
    under the new name: Lightning finds a callback's state by a key holding its monitor, so without
    this a resumed old run forgets its best score and a worse epoch overwrites best.ckpt."""
    states = checkpoint.get("callbacks") or {}
    for key in [k for k in states if isinstance(k, str)]:
        new_key = key
        for old, new in OLD_NAMES.items():
            new_key = new_key.replace(repr(old), repr(new))
        if new_key != key and new_key not in states:
            state = states.pop(key)
            if isinstance(state, dict) and state.get("monitor") in OLD_NAMES:
                state["monitor"] = OLD_NAMES[state["monitor"]]
            states[new_key] = state
