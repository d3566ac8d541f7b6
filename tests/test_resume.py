"""Kill a run with SIGKILL in a late epoch, resume it, and get exactly the uninterrupted run, on every schedule."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN, make_image_set
from fashionstyle import RunDir

pytestmark = pytest.mark.slow
EPOCHS = 5


def train_command(labels: Path, run: Path, schedule: str) -> list[str]:
    return [sys.executable, "-m", "fashionstyle.cli", "train", "--labels", str(labels), "--out", str(run),
            *TINY_TRAIN, "--epochs", str(EPOCHS), "--batch-size", "2", "--seed", "3", "--lr", "1e-2",
            "--lr-schedule", schedule]


def history(run: Path) -> list[dict[str, float]]:
    with (run / "history.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def labels(tmp_path_factory) -> Path:
    return make_image_set(tmp_path_factory.mktemp("resume") / "data", n=64)


@pytest.mark.parametrize("schedule", ["plateau", "onecycle", "cosine"])
def test_sigkill_in_a_late_epoch_then_resume_equals_the_uninterrupted_run(labels: Path, tmp_path: Path,
                                                                           schedule: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reference = tmp_path / "reference"
    subprocess.run(train_command(labels, reference, schedule), check=True, env=env, capture_output=True)
    last = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == EPOCHS - 1  # rewritten after every epoch, the final one included

    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_command(labels, killed, schedule), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "epochs" / f"e{EPOCHS - 2:03d}.npy").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "epochs" / f"e{EPOCHS:03d}.npy").exists(), "killed too late"

    resumed = subprocess.run([sys.executable, "-m", "fashionstyle.cli", "train", "--out", str(killed),
                              "--resume", "--no-progress"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = history(reference), history(killed)
    assert [r["epoch"] for r in b] == list(range(1, EPOCHS + 1))
    for row_a, row_b in zip(a, b):
        assert row_b == pytest.approx(row_a, rel=1e-5, abs=1e-6)
    if schedule == "plateau":  # the schedule did act, so a wrong resume would show
        assert len({r["lr"] for r in a}) > 1
    weights_a = torch.load(reference / "model.pt", weights_only=True)["state_dict"]
    weights_b = torch.load(killed / "model.pt", weights_only=True)["state_dict"]
    for name, value in weights_a.items():
        torch.testing.assert_close(weights_b[name], value, rtol=1e-5, atol=1e-6)
    ra, rb = RunDir.open(reference), RunDir.open(killed)
    np.testing.assert_allclose(rb.thresholds().thresholds_, ra.thresholds().thresholds_, atol=1e-6)
    np.testing.assert_allclose(rb.val_probs()[1], ra.val_probs()[1], atol=1e-6)
    assert rb.manifest()["best_epoch"] == ra.manifest()["best_epoch"]
