"""`train(config, out)`: the one entry point for every kind of training run.

    run = train(TrainConfig(labels="labels.csv"), "runs/lite0")   # -> a complete RunDir

`config.mode` picks one multi-label model (loop.train_multi) or one single-output model
per label (single_label.train_single); `config.teacher` a distilled student (distill.py).
"""
from __future__ import annotations

from pathlib import Path

from fashionstyle.core.config import TrainConfig
from fashionstyle.core.ranks import is_secondary_process
from fashionstyle.core.run import RunDir
from fashionstyle.training.trackers.base import check_trackers


def train(config: TrainConfig, out: str | Path, resume: bool = False) -> RunDir:
    """Train the run `config.mode` asks for; returns the finished run directory."""
    from fashionstyle.training.loop import train_multi, training_decodes_on_gpu

    config.validate()
    training_decodes_on_gpu(config)  # --decode gpu without CUDA fails before anything is written
    check_trackers(config.logger, config.mlflow_uri)  # a tracker that cannot log fails before the run folder
    if not resume and not is_secondary_process():  # DDP's other ranks start once rank 0 has written
        RunDir(out).refuse_taken()  # before the images are read
    if config.teacher:
        from fashionstyle.training.distill import train_distilled

        return train_distilled(config, out, resume)
    if config.mode == "single":
        from fashionstyle.training.single_label import train_single

        return train_single(config, out, resume)
    return train_multi(config, out, resume)
