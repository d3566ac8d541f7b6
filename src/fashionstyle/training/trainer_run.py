"""Running Lightning's Trainer for a run: stops by signal, whole checkpoints, quiet logs.

    with quiet_lightning():
        fit_module(trainer, module, (train_loader, val_loader), ckpt_path, run)   # RunInterrupted on SIGTERM/Ctrl-C

`AtomicCheckpointIO` is the Trainer's checkpoint plugin: a kill never leaves half a checkpoint.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerStatus
from torch.utils.data import DataLoader

from fashionstyle.core import atomic
from fashionstyle.core.run import RunDir, RunInterrupted

__all__ = ["AtomicCheckpointIO", "fit_module", "quiet_lightning"]


class AtomicCheckpointIO(L.pytorch.plugins.TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a kill never leaves half of one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        atomic.write_atomic(path, lambda f: torch.save(checkpoint, f))


def fit_module(trainer: L.Trainer, module: L.LightningModule, loaders: tuple[DataLoader, DataLoader],
               ckpt_path: str | None, run: RunDir) -> None:
    """trainer.fit, with a stop by SIGTERM or Ctrl-C raised as RunInterrupted.

    Lightning turns both into SystemExit (SIGTERM: exit 0, as if done) after the current batch;
    checkpoints/last.ckpt then holds the last finished epoch, so the run resumes exactly.
    """
    try:
        trainer.fit(module, *loaders, ckpt_path=ckpt_path, weights_only=True)
    except BaseException as error:
        signum = stop_signal(trainer, error)
        if signum is None:
            raise
        stop_workers(loaders)
        raise RunInterrupted(signum, run.path) from None


def stop_workers(loaders: tuple[DataLoader, DataLoader]) -> None:
    """Shut down the loaders' persistent worker processes, killed with the process group or not, so
    that their exit is not reported (a traceback at exit) as a failure."""
    for loader in loaders:
        iterator, loader._iterator = getattr(loader, "_iterator", None), None
        with contextlib.suppress(RuntimeError):  # "DataLoader worker ... is killed by signal"
            getattr(iterator, "_shutdown_workers", lambda: None)()


def stop_signal(trainer: L.Trainer, error: BaseException) -> int | None:
    """The signal that stopped `trainer.fit` with `error`, if one did."""
    if trainer.received_sigterm:  # also when data-loading workers got it first (a process group's
        return signal.SIGTERM     # SIGTERM) and their death is the error
    if isinstance(error, SystemExit) and trainer.state.status == TrainerStatus.INTERRUPTED:
        return signal.SIGINT  # Lightning's sys.exit(1) after a KeyboardInterrupt
    return None


class quiet_lightning:
    """Silence Lightning's banner lines, hints and known harmless warnings."""

    def __enter__(self) -> None:
        names = ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero",
                 "lightning.fabric.utilities.rank_zero")
        self._levels = {n: logging.getLogger(n).level for n in names}
        for name in self._levels:
            logging.getLogger(name).setLevel(logging.WARNING)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers|LitLogger|"
                                "litlogger|tensorboardX|Checkpoint directory|treespec|"
                                "Experiment logs directory|logging interval).*")

    def __exit__(self, *exc: object) -> None:
        self._warnings.__exit__(*exc)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
