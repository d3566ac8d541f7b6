"""Resume: exactly the uninterrupted run after a kill on every schedule, refused with other settings or data,
and a run stopped by SIGTERM or Ctrl-C says how to resume it."""
from __future__ import annotations

import csv
import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN, make_image_set
from fashionstyle import FashionStyleError, RunDir
from fashionstyle.core import config as config_lib
from fashionstyle.training import loop as training
from fashionstyle.cli import main
from fashionstyle.training.train import train
from fashionstyle.core.history import read_history

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


@pytest.mark.slow
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


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


ONE_CYCLE = [*TINY_TRAIN, "--epochs", "1", "--lr-schedule", "onecycle"]  # its steps depend on epochs and data


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished one-epoch one-cycle run and its label file."""
    labels = make_image_set(tmp_path_factory.mktemp("finished") / "data", n=32)
    run = labels.parent.parent / "run"
    assert main(["train", "--labels", str(labels), "--out", str(run), *ONE_CYCLE]) == 0
    return run, labels


def test_resume_refuses_each_setting_that_differs_and_writes_nothing(finished, tmp_path: Path, capsys) -> None:
    run, labels = finished
    other = make_image_set(tmp_path / "other", n=24, seed=5)
    yaml = tmp_path / "other.yaml"
    yaml.write_text("dropout: 0.1\n")
    refused = [(["--labels", str(other)], ["labels"]), (["--lr", "0.01"], ["lr"]),
               (["--seed", "7", "--loss", "bce"], ["seed", "loss"]), (["--backbone", "resnet18"], ["backbone"]),
               (["--image-size", "64"], ["image_size"]), (["--epochs", "6"], ["epochs"]),
               (["--config", str(yaml)], ["dropout"]), (["--recipe", "report"], ["backbone", "lr"])]
    before = snapshot(run)
    for extra, names in refused:
        assert main(["train", "--out", str(run), "--resume", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "differ" in err, err
        for name in names:
            assert f"{name} (run: " in err, (name, err)
        if extra[0] == "--epochs":
            assert "more epochs only on a constant or plateau schedule" in err
    assert snapshot(run) == before  # config.yaml included: a plain --resume still reads the run's own
    assert main(["train", "--out", str(run), "--resume"]) == 0


def test_resume_takes_settings_that_change_no_number_and_keeps_config_yaml(finished) -> None:
    run, labels = finished
    config = (run / "config.yaml").read_bytes()
    assert main(["train", "--out", str(run), "--resume", "--progress", "--num-workers", "0"]) == 0
    # the run's first command again, with --resume: the same settings, spelled as they were
    assert main(["train", "--labels", str(labels), "--out", str(run), *ONE_CYCLE, "--resume"]) == 0
    assert (run / "config.yaml").read_bytes() == config


def test_resume_refuses_a_label_file_changed_since(finished, capsys) -> None:
    run, labels = finished
    text = labels.read_text()
    header, first, *rest = text.splitlines()
    flipped = first[:-1] + ("0" if first.endswith("1") else "1")  # a train row's last label
    before = snapshot(run)
    try:
        labels.write_text("\n".join([header, flipped, *rest]) + "\n")
        assert main(["train", "--out", str(run), "--resume"]) == 2
    finally:
        labels.write_text(text)
    assert "needs the data the run was trained on" in capsys.readouterr().err
    assert snapshot(run) == before


def test_resume_through_the_api_refuses_another_config(finished) -> None:
    run, _ = finished
    config = config_lib.load(run / "config.yaml")
    before = snapshot(run)
    with pytest.raises(FashionStyleError, match=r"lr \(run: 0.001, given: 0.01\)"):
        train(dataclasses.replace(config, lr=0.01), run, resume=True)
    assert snapshot(run) == before


def test_resume_of_a_missing_run_says_there_is_nothing_to_resume(tmp_path: Path, capsys) -> None:
    assert main(["train", "--out", str(tmp_path / "missing"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume" in err and not (tmp_path / "missing").exists()


class SendSignal(L.Callback):
    """Sends `signum` to this process after the first batch of epoch `epoch` (0-based)."""

    def __init__(self, signum: int, epoch: int):
        self.signum, self.epoch, self.sent = signum, epoch, False

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.current_epoch == self.epoch and not self.sent:
            self.sent = True
            if self.signum == signal.SIGINT:  # what Python's SIGINT handler raises; a real signal can land
                raise KeyboardInterrupt       # in a finaliser under load, where the interpreter drops it
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum, code, epoch", [(signal.SIGTERM, 143, 1), (signal.SIGINT, 130, 1),
                                                 (signal.SIGTERM, 143, 0)])  # 0: before the first checkpoint
def test_a_signal_mid_training_exits_non_zero_and_says_how_to_resume(tmp_path: Path, monkeypatch, capsys,
                                                                     signum: int, code: int, epoch: int) -> None:
    labels = make_image_set(tmp_path / "data", n=32)
    run = tmp_path / "run"
    make_trainer = training.make_trainer
    monkeypatch.setattr(training, "make_trainer", lambda config, out, callbacks: make_trainer(
        config, out, [*callbacks, SendSignal(signum, epoch)]))
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN]) == code  # 2 epochs
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"stopped by {signal.Signals(signum).name}" in last
    assert not RunDir(run).manifest()["complete"]
    assert [r["epoch"] for r in read_history(RunDir(run))] == ["1"][:epoch]
    monkeypatch.undo()
    command = shlex.split(last.split("resume it with: ")[1])
    assert command == ["fashionstyle", "train", "--out", str(run), "--resume"]
    assert main(command[1:]) == 0
    assert [r["epoch"] for r in read_history(RunDir.open(run))] == ["1", "2"]


@pytest.mark.slow
def test_sigterm_to_the_process_group_with_loader_workers_exits_143_without_a_traceback(tmp_path: Path) -> None:
    """As a scheduler stops a job: every process of the group, data-loading workers included, gets SIGTERM."""
    labels = make_image_set(tmp_path / "data", n=64)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "fashionstyle.cli", "train", "--labels", str(labels), "--out", str(run),
               *TINY_TRAIN, "--epochs", "4", "--batch-size", "2", "--num-workers", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 300
    while not (run / "epochs" / "e001.npy").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before it could be stopped"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].endswith(
        f"resume it with: fashionstyle train --out {run} --resume"), err[-2000:]
    resumed = subprocess.run([sys.executable, "-m", "fashionstyle.cli", "train", "--out", str(run), "--resume"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [r["epoch"] for r in read_history(RunDir.open(run))] == ["1", "2", "3", "4"]


def test_a_run_older_than_the_threshold_rule_resumes_with_the_exact_rule_it_had(finished, tmp_path: Path) -> None:
    import shutil

    run = Path(shutil.copytree(finished[0], tmp_path / "old"))
    yaml_text = (run / "config.yaml").read_text()
    old_yaml = "".join(line for line in yaml_text.splitlines(keepends=True) if not line.startswith("threshold_rule:"))
    assert old_yaml != yaml_text
    (run / "config.yaml").write_text(old_yaml)  # as a run of an earlier version wrote it
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert RunDir.open(run).thresholds().rule == "exact"
    assert (run / "config.yaml").read_text() == old_yaml  # kept as it was
    assert main(["train", "--out", str(run), "--resume", "--threshold-rule", "exact"]) == 0
    assert main(["train", "--out", str(run), "--resume", "--threshold-rule", "pooled"]) == 2  # another setting


def test_init_from_is_not_needed_again_to_resume(finished, tmp_path: Path) -> None:
    import shutil

    source = Path(shutil.copytree(finished[0], tmp_path / "source"))
    labels = finished[1]
    warm = tmp_path / "warm"
    assert main(["train", "--labels", str(labels), "--out", str(warm), *ONE_CYCLE, "--init-from", str(source)]) == 0
    shutil.rmtree(source)
    assert main(["train", "--out", str(warm), "--resume"]) == 0  # the checkpoint holds the weights


def test_a_run_checkpointed_under_the_old_monitor_name_keeps_its_best_score_on_resume(tmp_path: Path) -> None:
    """The monitor was renamed (val_fbeta_tuned -> val_fbeta_epoch_exact): Lightning finds ModelCheckpoint's
    state by a key that holds it, so an old run would forget its best and overwrite best.ckpt with a worse epoch."""
    labels = make_image_set(tmp_path / "data", n=32)
    run = tmp_path / "run"
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN, "--epochs", "1",
                 "--lr-schedule", "constant"]) == 0
    last_path = run / "checkpoints" / "last.ckpt"
    last = torch.load(last_path, weights_only=False)
    [key] = [k for k in last["callbacks"] if "val_fbeta_epoch_exact" in k]
    state = last["callbacks"].pop(key)
    state.update(monitor="val_fbeta_tuned", best_model_score=torch.tensor(2.0))  # a best no epoch can beat
    last["callbacks"][key.replace("val_fbeta_epoch_exact", "val_fbeta_tuned")] = state
    torch.save(last, last_path)  # as a run of an earlier version wrote it
    best = (run / "checkpoints" / "best.ckpt").read_bytes()

    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    resumed = torch.load(last_path, weights_only=False)
    assert resumed["epoch"] == 1
    assert resumed["callbacks"][key]["best_model_score"].item() == 2.0
    assert (run / "checkpoints" / "best.ckpt").read_bytes() == best
