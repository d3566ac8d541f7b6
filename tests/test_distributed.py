"""Distributed data parallel on the CPU: 2 processes (gloo) gather validation before tuning."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_TRAIN, make_image_set
from fashionstyle import Predictor, RunDir, ThresholdTuner, macro_fbeta
from fashionstyle.core.history import MONITOR, read_history


@pytest.mark.slow
def test_two_process_ddp_tunes_on_all_validation_images(tmp_path: Path) -> None:
    labels = make_image_set(tmp_path / "data", n=46)  # 11 validation images: uneven across 2 ranks
    run_path = tmp_path / "ddp"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "fashionstyle.cli", "train", "--labels", str(labels), "--out", str(run_path),
         *TINY_TRAIN, "--epochs", "1", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunDir.open(run_path)
    ids, probs, targets = run.val_probs()
    assert len(ids) == 11 and len(set(ids)) == 11  # every image once: no shard, no padding duplicate
    images = [labels.parent / "img" / f"{i}.jpg" for i in ids]
    single = Predictor.from_run(run, device="cpu").predict_proba(images)  # one process, same model
    np.testing.assert_allclose(probs, single, atol=1e-5)
    tuner = ThresholdTuner(beta=2).fit(single, targets)
    np.testing.assert_allclose(run.thresholds().thresholds_, tuner.thresholds_, atol=1e-6)
    logged = float(read_history(run)[0][MONITOR])  # each epoch is judged at exact thresholds
    exact = ThresholdTuner(beta=2, rule="exact").fit(single, targets)
    assert abs(logged - macro_fbeta(targets, exact.predict(single))) < 1e-6


@pytest.mark.parametrize("env, secondary", [
    ({}, False), ({"RANK": "0"}, False), ({"RANK": "3"}, True), ({"LOCAL_RANK": "1"}, True),
    ({"SLURM_PROCID": "0"}, False), ({"SLURM_PROCID": "5"}, True),
    ({"NODE_RANK": "1", "LOCAL_RANK": "0"}, True), ({"RANK": "0", "NODE_RANK": "1"}, False),
])
def test_only_global_rank_zero_is_primary(monkeypatch, env: dict, secondary: bool) -> None:
    from fashionstyle.core.ranks import is_secondary_process

    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_secondary_process() is secondary
