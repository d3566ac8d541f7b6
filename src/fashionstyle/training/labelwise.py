"""Label-wise best epoch (`--select per-label`): each label predicted by its own best epoch.

In a multi-label run an epoch that helps one label can hurt another (the
report's Figure 8). Training keeps the weights of every epoch that is still the
best for at least one label (`epochs/eNNN.pt`) and deletes the others, so one
run ends with what several single-label runs would give. For comparison, the
same training's plain best-epoch model is kept as a run of its own in
`RUN/best_epoch/`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core import config as config_lib
from fashionstyle.core.config import TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import Member, RunDir
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.labels.table import LabelTable
from fashionstyle.model.network import save_model


def best_epochs(history: Sequence[dict[str, Any]], label_names: Sequence[str]) -> dict[str, int]:
    """For each label, the epoch with its highest validation F-beta (the first on ties)."""
    if not history:
        raise FashionStyleError("no finished epoch recorded")
    epochs = [int(row["epoch"]) for row in history]
    best = {}
    for name in label_names:
        scores = [float(row[f"fbeta_{name}"]) for row in history]
        best[name] = epochs[int(np.argmax(scores))]
    return best


def epoch_model_path(run: RunDir, epoch: int):
    return run / "epochs" / f"e{epoch:03d}.pt"


def save_epoch_model(run: RunDir, epoch: int, record: dict[str, Any]) -> None:
    save_model(epoch_model_path(run, epoch), record)


def prune_epoch_models(run: RunDir, keep: set[int]) -> None:
    """Delete the epoch weights that no label needs any more."""
    for path in (run / "epochs").glob("e*.pt"):
        if int(path.stem[1:]) not in keep:
            path.unlink()


def compose(run: RunDir, label_names: Sequence[str],
            history: Sequence[dict[str, Any]]) -> tuple[list[Member], np.ndarray]:
    """Members (one per kept epoch, with its labels) and the composed validation probabilities."""
    best = best_epochs(history, label_names)
    epoch_probs = run.epoch_probs()
    members = [Member(epoch_model_path(run, epoch), [n for n in label_names if best[n] == epoch])
               for epoch in sorted(set(best.values()))]
    probs = np.stack([epoch_probs[best[n]][:, i] for i, n in enumerate(label_names)], axis=1)
    return members, probs


def write_best_epoch_run(run: RunDir, config: TrainConfig, val_table: LabelTable,
                         probs: np.ndarray) -> RunDir:
    """RUN/best_epoch: the plain multi-label result of the same training (one best epoch)."""
    plain = RunDir(run / "best_epoch")
    plain.path.mkdir(exist_ok=True)
    (plain / "model.pt").unlink(missing_ok=True)
    os.link(run / "model.pt", plain / "model.pt")
    atomic.write_text(plain / "config.yaml", config_lib.dump(dataclasses.replace(config, select="best")))
    plain.write_label_names(val_table.label_names)
    plain.write_val_probs(val_table.ids, probs, val_table.require_targets())
    atomic.write_text(plain / "history.csv", (run / "history.csv").read_text(encoding="utf-8"))
    plain.write_thresholds(ThresholdTuner(beta=config.beta, rule=config.threshold_rule).fit(probs, val_table.targets))
    plain.write_manifest("model", complete=True, select="best", parent=str(run.path.resolve()))
    return plain
