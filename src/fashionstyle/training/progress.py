"""Training progress in one style: a live line at a terminal, one plain line per epoch in a pipe or log.

    trainer = L.Trainer(..., enable_progress_bar=False, callbacks=[TrainingProgress(live=sys.stdout.isatty())])

At a terminal (live) one line is redrawn in place, a fixed-width bar that never shrinks:

    epoch 2/10 [#######.............]  36%  1.2k/3.4k img  152 img/s  ETA 0:03:12

and each finished epoch leaves its own line above it. In a pipe or log only those lines appear:

    epoch 2/10  14 s  152 img/s  ETA 0:01:52  train_loss 0.2310  val F2 0.4120 at 0.5, 0.4710 at ...  lr 0.001

Epochs count from 1 (a resumed run from its first epoch still to train), images/s counts the images
of every rank, and the ETA is for the whole run: the time per epoch so far (validation included)
times the epochs still to go. Printed by global rank 0 alone.
"""
from __future__ import annotations

import datetime
import math
import shutil
import sys
import time
from typing import Any, TextIO

import lightning as L

from fashionstyle.core.history import MONITOR

__all__ = ["TrainingProgress", "epoch_line", "duration"]

BAR_WIDTH = 20
REDRAW_S = 0.25  # at most four redraws a second


def duration(seconds: float) -> str:
    """`0:03:12`; `?` while unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    return str(datetime.timedelta(seconds=int(round(seconds))))


def count(n: float) -> str:
    """`950`, `1.2k`, `3.4M`."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    done = int(round(max(0.0, min(1.0, fraction)) * width))
    return "[" + "#" * done + "." * (width - done) + "]"


def epoch_line(epoch: int, epochs: int, seconds: float, rate: float, eta: float, metrics: dict[str, float],
               beta: float, lr: float) -> str:
    """The line a finished epoch leaves (see the module docstring)."""
    nan = float("nan")
    return (f"epoch {epoch}/{epochs}  {seconds:.0f} s  {rate:.0f} img/s  ETA {duration(eta)}  "
            f"train_loss {metrics.get('train_loss', nan):.4f}  val F{beta:g} {metrics.get('val_fbeta_05', nan):.4f} "
            f"at 0.5, {metrics.get(MONITOR, nan):.4f} at exact thresholds  lr {lr:.3g}")


class TrainingProgress(L.Callback):
    """Epoch i/N, images/s and the run's ETA on global rank 0 (see the module docstring).

    `live`: redraw a bar at a terminal; otherwise only a line per epoch. `stream`: where (stdout).
    """

    def __init__(self, live: bool, beta: float = 2.0, stream: TextIO | None = None):
        self.live, self.beta, self.stream = live, beta, stream
        self.first_epoch, self.started, self.epoch_started, self.last_draw = 0, 0.0, 0.0, 0.0
        self.epoch_images, self.shown, self.trained_until = 0, 0, 0.0

    @property
    def out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.first_epoch = trainer.current_epoch  # a resumed run starts after its finished epochs
        self.started = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.epoch_started, self.epoch_images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        seen = len(getattr(batch, "index", ())) * trainer.world_size  # every rank's images
        self.epoch_images += seen
        now = self.trained_until = time.perf_counter()
        if self.live and trainer.is_global_zero and now - self.last_draw >= REDRAW_S:
            self.last_draw = now
            self.draw(trainer, batch_idx + 1)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        now = time.perf_counter()
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        done = trainer.current_epoch + 1 - self.first_epoch
        eta = (now - self.started) / max(done, 1) * (trainer.max_epochs - trainer.current_epoch - 1)
        rate = self.epoch_images / max(self.trained_until - self.epoch_started, 1e-9)  # training alone
        line = epoch_line(trainer.current_epoch + 1, trainer.max_epochs, now - self.epoch_started, rate, eta,
                          metrics, self.beta,
                          trainer.optimizers[0].param_groups[-1]["lr"] if trainer.optimizers else float("nan"))
        self.write(line, final=True)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.live and self.shown:
            self.write("", final=False)  # clear a bar left by a stopped epoch

    def draw(self, trainer: L.Trainer, batches: int) -> None:
        """Redraw the live line: epoch i/N, the epoch's bar, images, images/s, the run's ETA."""
        total = max(int(trainer.num_training_batches or 0), 1)
        fraction = min(batches / total, 1.0)
        elapsed = time.perf_counter() - self.started
        done = trainer.current_epoch - self.first_epoch + fraction  # epochs of this session, in parts
        left = trainer.max_epochs - trainer.current_epoch - fraction
        rate = self.epoch_images / max(time.perf_counter() - self.epoch_started, 1e-9)
        per_epoch = self.epoch_images / fraction if fraction else 0
        text = (f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {bar(fraction)} {fraction:4.0%}  "
                f"{count(self.epoch_images)}/{count(per_epoch)} img  {rate:.0f} img/s  "
                f"ETA {duration(elapsed / done * left if done > 0 else math.nan)}")
        self.write(text, final=False)

    def write(self, text: str, final: bool) -> None:
        """A finished line (`final`), or the live line redrawn in place, cut to the terminal's width."""
        if not self.live:
            if final:
                print(text, file=self.out, flush=True)
            return
        width = max(shutil.get_terminal_size((100, 20)).columns - 1, 20)
        clear = "\r" + " " * min(self.shown, width) + "\r" if self.shown else ""
        shown = text if final else text[:width]
        self.out.write(clear + shown + ("\n" if final else ""))
        self.out.flush()
        self.shown = 0 if final else len(shown)
