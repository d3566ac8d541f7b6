"""Single-label mode (`--mode single`): one model with a single output per label.

The report trained 13 such networks, each with its own learning rate and
number of epochs. Here they are trained one after another into
`RUN/labels/<label>/` (each a complete run of its own), on the same train/val
split, and the parent run predicts with all of them like any other run.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from fashionstyle.core import atomic
from fashionstyle.core import config as config_lib
from fashionstyle.core.config import TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.model_card import write_model_card
from fashionstyle.core.ranks import is_secondary_process
from fashionstyle.core.run import Member, RunDir
from fashionstyle.core.thresholds import ThresholdTuner
from fashionstyle.data.labels.names import unknown_label_message
from fashionstyle.training.loop import prepare_tables, train_multi
from fashionstyle.training.resume_checks import check_same_run, data_fingerprint


def label_folder(name: str) -> str:
    """A file-system-safe folder name for a label."""
    return re.sub(r"[^\w.-]+", "_", name, flags=re.UNICODE) or "label"


def check_label_folders(names: list[str]) -> None:
    """Refuse labels whose model folders would be one (same safe name, or case apart)."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(label_folder(name).lower(), name)
        if other != name:
            raise FashionStyleError(f"labels {other!r} and {name!r} would share the model folder "
                                    f"labels/{label_folder(name)}; rename one for --mode single")


def label_config(config: TrainConfig, name: str) -> TrainConfig:
    """The shared config with this label's own learning rate and epochs, if given."""
    lr = (config.label_lr or {}).get(name, config.lr)
    epochs = (config.label_epochs or {}).get(name, config.epochs)
    return dataclasses.replace(config, mode="multi", lr=float(lr), epochs=int(epochs),
                               label_lr=None, label_epochs=None)


def check_label_keys(config: TrainConfig, names: list[str]) -> None:
    for field in ("label_lr", "label_epochs"):
        for key in getattr(config, field) or {}:
            if key not in names:
                raise FashionStyleError(f"config {field}: {unknown_label_message(key, names)}")


def train_single(config: TrainConfig, out: str | Path, resume: bool = False) -> RunDir:
    """Train one single-output model per label; returns the parent run."""
    train_table, val_table, bad = prepare_tables(config)
    names = train_table.label_names
    check_label_keys(config, names)
    check_label_folders(names)
    data = data_fingerprint(train_table, val_table)
    if resume and not is_secondary_process():  # finished labels are kept: the settings and images must be theirs
        check_same_run(RunDir(out), config, data, parts="labels")
    run = RunDir.create(out, resume=resume)
    run.write_manifest("single", complete=False, data=data)
    atomic.write_text(run / "config.yaml", config_lib.dump(config))
    run.write_label_names(names)
    members, columns = [], []
    for i, name in enumerate(names):
        sub = RunDir(run / "labels" / label_folder(name))
        print(f"[{i + 1}/{len(names)}] single-label model for {name}")
        if not sub.is_complete():
            again = resume and (sub / "manifest.json").is_file()  # started: resumed, even before a checkpoint
            train_multi(label_config(config, name), sub.path, again,
                        (train_table.with_labels([i]), val_table.with_labels([i]), bad))
        members.append(Member(sub / "model.pt", [name]))
        columns.append(sub.val_probs()[1][:, 0])
    probs = np.stack(columns, axis=1)  # (N, L)
    run.write_members(members)
    run.write_val_probs(val_table.ids, probs, val_table.require_targets())
    run.write_thresholds(ThresholdTuner(beta=config.beta, rule=config.threshold_rule).fit(probs, val_table.targets))
    run.write_manifest("single", complete=True, epochs=config.epochs, data=data)
    write_model_card(run)
    return run
