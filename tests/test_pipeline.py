"""End to end through the CLI on a tiny image set: train -> tune -> evaluate -> predict."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import LABELS, TINY_TRAIN
from fashionstyle import Predictor, RunDir
from fashionstyle.cli import main
from fashionstyle.data.labels.read import read_submission


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, Path]:
    from conftest import make_image_set

    root = tmp_path_factory.mktemp("pipeline")
    labels = make_image_set(root / "data", n=48)
    run = root / "run"
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN]) == 0
    return labels, run


@pytest.mark.slow
def test_run_directory_holds_everything(trained_run) -> None:
    _, run = trained_run
    for name in ("manifest.json", "config.yaml", "labels.json", "model.pt", "thresholds.json",
                 "val_probs.npz", "history.csv", "epochs/e001.npy", "epochs/e002.npy",
                 "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["backbone"] == "test_resnet" and config["epochs"] == 2
    run_dir = RunDir.open(run)
    assert run_dir.label_names() == list(LABELS)
    ids, probs, targets = run_dir.val_probs()
    assert probs.shape == (12, 3) and targets.shape == (12, 3) and len(ids) == 12
    assert list(run_dir.epoch_probs()) == [1, 2]
    assert (run / "logs").is_dir()


@pytest.mark.slow
def test_tune_rewrites_thresholds_for_another_beta(trained_run, capsys) -> None:
    _, run = trained_run
    assert main(["tune", str(run), "--beta", "1"]) == 0
    assert json.loads((run / "thresholds.json").read_text())["beta"] == 1.0
    assert main(["tune", str(run)]) == 0
    assert "F2 tuned" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_prints_both_tables_and_writes_json(trained_run, capsys) -> None:
    labels, run = trained_run
    assert main(["evaluate", str(run), "--labels", str(labels), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "F2@0.5" in out and "F2 tuned" in out and "macro" in out
    scores = json.loads((run / "eval_test.json").read_text())
    assert scores["n_images"] == 12 and len(scores["fbeta"]) == 3


@pytest.mark.slow
def test_predict_formats_agree_with_predictor(trained_run, tmp_path: Path) -> None:
    labels, run = trained_run
    folder = labels.parent / "img"
    assert main(["predict", str(run), "--images", str(folder), "--out", str(tmp_path / "sub.txt"), "--quiet"]) == 0
    assert main(["predict", str(run), "--images", str(folder), "--out", str(tmp_path / "p.csv"),
                 "--format", "csv", "--quiet"]) == 0
    assert main(["predict", str(run), "--images", str(labels), "--out", str(tmp_path / "p.json"),
                 "--format", "json", "--quiet"]) == 0
    predictor = Predictor.from_run(run)
    files = sorted(folder.glob("*.jpg"))
    expected = predictor.predict(files)
    ids, flags = read_submission(tmp_path / "sub.txt", LABELS)
    assert ids == [p.stem for p in files]
    np.testing.assert_array_equal(flags, expected)
    probs = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, usecols=(2, 3, 4))  # image,labels,<labels>
    np.testing.assert_allclose(probs, predictor.predict_proba(files), atol=1e-5)
    records = json.loads((tmp_path / "p.json").read_text())["predictions"]
    assert len(records) == 48 and set(records[0]["scores"]) == set(LABELS)


@pytest.mark.slow
def test_existing_run_is_not_overwritten(trained_run, capsys) -> None:
    labels, run = trained_run
    before = (run / "model.pt").read_bytes()
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (run / "model.pt").read_bytes() == before


@pytest.mark.slow
def test_stats_prints_ratios_and_weights(trained_run, capsys) -> None:
    labels, _ = trained_run
    assert main(["stats", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "pos:neg" in out and "Striped" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "--labels", "missing.csv", "--out", "x"], "label file not found"),
    (["train", "--labels", "{labels}", "--out", "{tmp}/r", "--backbone", "resnet_nope"], "unknown backbone"),
    (["train", "--labels", "{labels}", "--out", "{tmp}/r", "--loss", "hinge"], "invalid choice: 'hinge'"),
    (["evaluate", "{tmp}/none", "--labels", "{labels}"], "run directory not found"),
])
@pytest.mark.slow
def test_user_errors_are_one_line(trained_run, tmp_path, capsys, argv, message) -> None:
    labels, _ = trained_run
    argv = [a.format(labels=labels, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_incomplete_run_is_refused(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.write_manifest("model", complete=False)
    with pytest.raises(Exception, match="incomplete run"):
        RunDir.open(run.path)


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint(tmp_path: Path) -> None:
    from conftest import make_image_set

    labels = make_image_set(tmp_path / "data", n=24)
    run = tmp_path / "run"
    argv = ["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN]
    assert main([*argv, "--epochs", "1"]) == 0
    first = (run / "epochs" / "e001.npy").read_bytes()
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"]) == 0
    history = (run / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2"]
    assert (run / "epochs" / "e001.npy").read_bytes() == first  # epoch 1 was not retrained
    assert RunDir.open(run).manifest()["epochs"] == 2


@pytest.mark.slow
def test_demo_runs_end_to_end_small(tmp_path: Path, capsys) -> None:
    from fashionstyle.demo import run_demo

    assert run_demo(tmp_path / "demo", n_images=96, epochs=1) == 0
    out = capsys.readouterr().out
    assert "all-positive baseline" in out and "F2 tuned" in out
    assert RunDir.open(tmp_path / "demo" / "run").label_names()[0] == "Sport"
    assert run_demo(tmp_path / "demo", n_images=96, epochs=1) == 0  # a second demo replaces the first


@pytest.mark.slow
def test_train_warns_about_a_label_it_cannot_learn(tmp_path: Path, capsys) -> None:
    from conftest import make_image_set

    labels = make_image_set(tmp_path / "data", n=24)
    lines = labels.read_text().splitlines()
    rows = [lines[0]] + [",".join(r.split(",")[:-1] + ["0"]) if ",train," in r else r for r in lines[1:]]
    labels.write_text("\n".join(rows) + "\n")  # Dotted: no positive in the train split
    assert main(["train", "--labels", str(labels), "--out", str(tmp_path / "run"), *TINY_TRAIN,
                 "--epochs", "1"]) == 0
    assert "label Dotted has no positives in the train split: cannot be learned" in capsys.readouterr().err


@pytest.mark.slow
def test_a_log_gets_one_line_per_epoch_and_no_progress_bar(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from conftest import make_image_set

    labels = make_image_set(tmp_path / "data", n=24)
    argv = [a for a in TINY_TRAIN if a != "--no-progress"]  # stdout is a pipe: no terminal
    done = subprocess.run([sys.executable, "-m", "fashionstyle.cli", "train", "--labels", str(labels),
                           "--out", str(tmp_path / "run"), *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("train_loss" in line and "at exact thresholds" in line and "lr " in line for line in lines)
    assert "\r" not in done.stdout + done.stderr  # no progress-bar frames in a log


def test_training_batches_stay_uint8_until_the_module_normalises_them(tmp_path: Path) -> None:
    """make_loaders collates uint8 crops (a quarter of float32's bytes) with their flips; the module
    turns them into normalised, flipped, channels-last model input after the copy to the device."""
    import torch

    from conftest import make_image_set
    from fashionstyle.core.config import TrainConfig
    from fashionstyle.data.splits import train_val_split
    from fashionstyle.data.labels.read import read_labels
    from fashionstyle.model.losses import create_loss
    from fashionstyle.model.network import create_model
    from fashionstyle.training.loop import StyleModule, make_loaders

    labels = make_image_set(tmp_path / "data", n=16)
    config = TrainConfig(labels=str(labels), backbone="test_resnet", pretrained=False, image_size=32, batch_size=4,
                         num_workers=0, hidden=8)
    train, val = train_val_split(read_labels(labels), config.val_fraction, config.seed)
    train_loader, val_loader = make_loaders(config, train, val)
    batch, val_batch = next(iter(train_loader)), next(iter(val_loader))
    assert batch.images.dtype == torch.uint8 and batch.images.shape == (4, 3, 32, 32)
    assert batch.flip.dtype == torch.bool and val_batch.flip is None and val_batch.images.dtype == torch.uint8
    model = create_model("test_resnet", 3, pretrained=False, hidden=8)
    module = StyleModule(model, create_loss("bce", train.targets), config)
    raw = batch.images.clone()
    ready = module.on_after_batch_transfer(batch, 0).images
    assert ready.dtype == torch.float32 and ready.is_contiguous(memory_format=torch.channels_last)
    expected = module.to_input(raw)  # normalised, not flipped
    for i, flip in enumerate(batch.flip.tolist()):
        torch.testing.assert_close(ready[i], expected[i].flip(-1) if flip else expected[i])


def test_training_loader_with_decoding_on_the_device_gives_the_host_loaders_batches(tmp_path: Path) -> None:
    """decode="gpu"'s loaders and module hook, run on the CPU (the module's device): the workers send
    JPEG bytes and drawn crops, on_before_batch_transfer decodes and crops them, and the model input
    is the host loader's (same seed: same rows, crops and flips; validation decodes on the host)."""
    import torch

    from conftest import make_image_set
    from fashionstyle.core.config import TrainConfig
    from fashionstyle.data.splits import train_val_split
    from fashionstyle.data.transforms import PlannedCrop
    from fashionstyle.data.labels.read import read_labels
    from fashionstyle.model.losses import create_loss
    from fashionstyle.model.network import create_model
    from fashionstyle.training.loop import StyleModule, make_loaders

    labels = make_image_set(tmp_path / "data", n=16)
    config = TrainConfig(labels=str(labels), backbone="test_resnet", pretrained=False, image_size=32, batch_size=4,
                         num_workers=0, hidden=8)
    train, val = train_val_split(read_labels(labels), config.val_fraction, config.seed)
    host, device = make_loaders(config, train, val), make_loaders(config, train, val, decode_on_device=True)
    module = StyleModule(create_model("test_resnet", 3, pretrained=False, hidden=8),
                         create_loss("bce", train.targets), config)
    raw = next(iter(device[0]))
    assert all(isinstance(s, PlannedCrop) for s in raw.images)
    got, expected = module.on_before_batch_transfer(raw, 0), next(iter(host[0]))
    assert torch.equal(got.index, expected.index) and torch.equal(got.targets, expected.targets)
    assert torch.equal(got.flip, expected.flip) and got.images.dtype == torch.uint8
    assert (got.images.float() - expected.images.float()).abs().mean() < 2  # of 255: decoder rounding at most
    ready = module.on_after_batch_transfer(got, 0).images
    assert ready.dtype == torch.float32 and ready.is_contiguous(memory_format=torch.channels_last)
    val_batch = next(iter(device[1]))
    assert isinstance(val_batch.images, torch.Tensor) and val_batch.images.dtype == torch.uint8
