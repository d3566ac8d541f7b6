"""Training progress in one style: a live line with epoch i/N, images/s and the run's ETA at a terminal,
one plain line per epoch in a pipe; no Lightning internals (v_num, epochs counted from 0)."""
from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import TINY_TRAIN, make_image_set
from fashionstyle.training import progress
from fashionstyle.training.progress import TrainingProgress, duration

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  \d+ s  \d+ img/s  ETA \d+:\d\d:\d\d  train_loss [0-9.]+  val F2 "
                        r"[0-9.]+ at 0.5, [0-9.]+ [a-z ]+  lr [0-9.e+-]+$")


class FakeTrainer(SimpleNamespace):
    """What TrainingProgress reads of a Lightning Trainer."""

    def __init__(self, epoch: int = 0, epochs: int = 3, batches: int = 4):
        super().__init__(current_epoch=epoch, max_epochs=epochs, num_training_batches=batches, world_size=1,
                         is_global_zero=True, callback_metrics={}, optimizers=[])


def run_epoch(bar: TrainingProgress, trainer: FakeTrainer, batch_size: int = 8) -> None:
    bar.on_train_epoch_start(trainer, None)
    for i in range(trainer.num_training_batches):
        bar.on_train_batch_end(trainer, None, None, SimpleNamespace(index=list(range(batch_size))), i)
    bar.on_train_epoch_end(trainer, None)


@pytest.mark.slow
def test_a_pipe_gets_one_plain_line_per_epoch_from_epoch_1(tmp_path: Path, capfd) -> None:
    from fashionstyle.cli import main

    labels = make_image_set(tmp_path / "data", n=32)
    args = [a for a in TINY_TRAIN if a != "--no-progress"]  # progress on, but stdout is no terminal
    assert main(["train", "--labels", str(labels), "--out", str(tmp_path / "run"), *args, "--epochs", "2"]) == 0
    out, err = capfd.readouterr()
    epochs = [EPOCH_LINE.match(line) for line in out.splitlines() if line.startswith("epoch")]
    assert all(epochs) and [m.group(1, 2) for m in epochs] == [("1", "2"), ("2", "2")], out
    assert "v_num" not in out + err and "Epoch 0" not in out + err and "\r" not in out


def draw_epoch(monkeypatch, columns: int) -> str:
    """What a resumed run's second epoch (of 3) writes to a terminal `columns` wide."""
    monkeypatch.setattr(progress, "REDRAW_S", 0.0)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((columns, 20)))
    stream = io.StringIO()
    bar = TrainingProgress(live=True, stream=stream)
    trainer = FakeTrainer(epoch=1, epochs=3)  # resumed after epoch 1
    bar.on_train_start(trainer, None)
    run_epoch(bar, trainer)
    return stream.getvalue()


def test_a_terminal_gets_a_fixed_width_bar_with_images_per_second_and_the_runs_eta(monkeypatch) -> None:
    written = draw_epoch(monkeypatch, 200)
    live = [f for f in written.split("\r") if "[" in f]
    assert len(live) == 4 and all(f.startswith("epoch 2/3 [") for f in live)  # from epoch 1, not 0
    assert re.search(r"epoch 2/3 \[#{20}\] 100%  32/32 img  \d+ img/s  ETA \d+:\d\d:\d\d", written)
    finished = written.splitlines()[-1].split("\r")[-1]
    assert finished.startswith("epoch 2/3  ") and "img/s" in finished and "ETA" in finished
    narrow = draw_epoch(monkeypatch, 40)
    live = [f for f in narrow.split("\r") if "[" in f]
    assert all(re.match(r"epoch 2/3 \[[#.]{20}\]", f) for f in live)  # the bar keeps its 20 characters
    assert all(len(f) <= 39 for f in live)  # cut to the terminal, never wrapped onto a new line
    assert "v_num" not in written + narrow


def test_the_eta_covers_every_epoch_still_to_train(monkeypatch) -> None:
    clock = iter(range(0, 10_000, 5))  # each look at the clock: 5 s later
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    stream = io.StringIO()
    bar = TrainingProgress(live=False, stream=stream)
    trainer = FakeTrainer(epoch=0, epochs=4, batches=2)
    bar.on_train_start(trainer, None)
    run_epoch(bar, trainer)
    line = stream.getvalue().splitlines()[-1]
    # the clock: run start 0, epoch start 5, batches end 10 and 15, epoch end (validated) 20
    assert line.startswith("epoch 1/4  15 s  2 img/s  ")  # 16 images in the 10 s of training steps
    assert f"ETA {duration(3 * 20)}" in line  # 20 s per epoch so far, validation included; 3 epochs to go
    assert "\r" not in stream.getvalue() and len(stream.getvalue().splitlines()) == 1


@pytest.mark.parametrize("seconds, text", [(0, "0:00:00"), (192.4, "0:03:12"), (90061, "1 day, 1:01:01"),
                                           (float("nan"), "?")])
def test_durations_read_as_clock_time(seconds: float, text: str) -> None:
    assert duration(seconds) == text
