"""Bad images, crash and resume: nothing lost, no silent wrong answer."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_TRAIN, make_image_set
from fashionstyle import FashionStyleError, RunDir
from fashionstyle.core import atomic
from fashionstyle.cli import main
from fashionstyle.data.images.files import open_rgb


def spoil(folder: Path, names: list[str]) -> dict[str, str]:
    """Replace some images by each kind of bad file; returns name -> kind."""
    kinds = ["missing", "zero-byte", "truncated", "not-an-image", "bomb"]
    done = {}
    for name, kind in zip(names, kinds * len(names)):
        path = folder / name
        if kind == "missing":
            path.unlink()
        elif kind == "zero-byte":
            path.write_bytes(b"")
        elif kind == "truncated":
            path.write_bytes(path.read_bytes()[:120])
        elif kind == "not-an-image":
            path.write_text("<html>not found</html>")
        else:
            Image.new("1", (12000, 12000)).save(path.with_suffix(".png"))
            path.with_suffix(".png").rename(path)
        done[name] = kind
    return done


def test_open_rgb_refuses_each_kind_of_bad_file(tmp_path: Path) -> None:
    make_image_set(tmp_path, n=5)
    names = [f"{i:03d}.jpg" for i in range(5)]
    kinds = spoil(tmp_path / "img", names)
    for name, kind in kinds.items():
        with pytest.raises(FashionStyleError) as err:
            open_rgb(tmp_path / "img" / name)
        message = str(err.value)
        assert name in message
        if kind == "bomb":
            assert "too large" in message


@pytest.mark.slow
def test_five_percent_bad_images_are_skipped_and_counted(tmp_path: Path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=80)
    bad = spoil(tmp_path / "data" / "img", [f"{i:03d}.jpg" for i in (0, 2, 5, 9)])  # 4 of 80 = 5%
    run = tmp_path / "run"
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN]) == 0
    listed = (run / "bad_images.csv").read_text()
    for name in bad:
        assert name in listed
    assert RunDir.open(run).manifest()["complete"]
    assert main(["evaluate", str(run), "--labels", str(labels), "--split", "all", "--quiet"]) == 0
    scores = json.loads((run / "eval_all.json").read_text())
    assert scores["skipped_images"] == 4 and scores["n_images"] == 76
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), "--images", str(labels), "--out", str(out), "--format", "csv", "--quiet"]) == 0
    assert len(out.read_text().splitlines()) == 1 + 80  # the 4 unreadable: rows without scores, with their error
    assert len(Path(f"{out}.skipped.txt").read_text().splitlines()) == 4
    capsys.readouterr()
    assert main(["evaluate", str(run), "--labels", str(labels), "--split", "all", "--quiet",
                 "--on-bad-image", "fail"]) == 2
    assert "000.jpg" in capsys.readouterr().err or "002.jpg" in capsys.readouterr().err


def test_fail_policy_stops_training_before_it_starts(tmp_path: Path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=24)
    spoil(tmp_path / "data" / "img", ["002.jpg"])  # a validation image (every 4th from 2)
    argv = ["train", "--labels", str(labels), "--out", str(tmp_path / "run"), *TINY_TRAIN]
    assert main([*argv, "--on-bad-image", "fail"]) == 2
    err = capsys.readouterr().err
    assert "002.jpg" in err and "line" in err and "--on-bad-image skip" in err


def _train_command(labels: Path, run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fashionstyle.cli", "train", "--labels", str(labels), "--out", str(run),
            *TINY_TRAIN, "--epochs", "4", "--batch-size", "2", "--seed", "7", *extra]


def test_resuming_removes_the_temporary_file_of_a_write_killed_half_way(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    run.write_manifest("train", complete=False)
    killed_write = run / "checkpoints" / ".last.ckpt.0bnx1a9a.part"  # SIGKILL inside write_atomic
    killed_write.parent.mkdir()
    killed_write.write_bytes(b"half a checkpoint")
    kept = run / "checkpoints" / "last.ckpt"
    kept.write_bytes(b"whole")
    RunDir.create(run.path, resume=True)
    assert not killed_write.exists() and kept.read_bytes() == b"whole"


def _wait_until(condition: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    """Poll `condition` every 10 ms while `proc` runs; `timeout` (s) only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"training ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.01)


def _checkpointed_epochs(run: Path) -> int:
    """How many epochs checkpoints/last.ckpt holds (written atomically: whole or absent)."""
    import torch

    last = run / "checkpoints" / "last.ckpt"
    return torch.load(last, weights_only=False)["epoch"] + 1 if last.is_file() else 0


@pytest.mark.slow
def test_sigkill_in_epoch_3_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    """Tolerance: 1e-6 on every validation probability and threshold (CPU, same seed)."""
    labels = make_image_set(tmp_path / "data", n=64)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reference = tmp_path / "reference"
    subprocess.run(_train_command(labels, reference), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_command(labels, killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # epoch 2's checkpoint is its last write (after e002.npy and its history row): killed in epoch 3
    _wait_until(lambda: (killed / "epochs" / "e002.npy").exists() and _checkpointed_epochs(killed) >= 2, proc,
                "epoch 2's checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not RunDir(killed).manifest()["complete"]
    with pytest.raises(FashionStyleError, match="incomplete run"):
        RunDir.open(killed)
    finished = sorted(p.name for p in (killed / "epochs").glob("e*.npy"))
    assert "e004.npy" not in finished

    resumed = subprocess.run([sys.executable, "-m", "fashionstyle.cli", "train", "--out", str(killed),
                              "--resume", "--no-progress"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = RunDir.open(reference), RunDir.open(killed)
    np.testing.assert_allclose(b.val_probs()[1], a.val_probs()[1], atol=1e-6)
    np.testing.assert_allclose(b.thresholds().thresholds_, a.thresholds().thresholds_, atol=1e-6)
    for epoch, probs in a.epoch_probs().items():
        np.testing.assert_allclose(b.epoch_probs()[epoch], probs, atol=1e-6)
    assert not list(killed.rglob("*.part"))


def test_incompatible_run_format_is_refused(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.write_manifest("model", complete=True)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["format"] = 99
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FashionStyleError, match="format 99 is not supported"):
        RunDir.open(run.path)
    (run / "manifest.json").write_text("{broken")
    with pytest.raises(FashionStyleError, match="corrupt JSON"):
        RunDir.open(run.path)


@pytest.mark.parametrize("orientation, rotate", [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
                                                 (3, Image.Transpose.ROTATE_180)])
def test_open_rgb_applies_the_exif_orientation(tmp_path: Path, orientation: int, rotate) -> None:
    upright = np.zeros((40, 24, 3), np.uint8)  # portrait: red top half, blue bottom half
    upright[:20, :, 0] = 255
    upright[20:, :, 2] = 255
    stored = Image.fromarray(upright).transpose(rotate)  # as the camera stored it
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    pixels = np.asarray(open_rgb(tmp_path / "phone.jpg")).astype(int)
    assert pixels.shape == upright.shape
    assert np.abs(pixels - upright).mean() < 8


def test_open_rgb_scales_16_bit_greyscale_to_8_bits(tmp_path: Path) -> None:
    gradient16 = np.tile(np.arange(256, dtype=np.uint16) * 257, (4, 1))  # 0..65535
    Image.fromarray(gradient16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    pixels = np.asarray(open_rgb(tmp_path / "g16.png"))
    np.testing.assert_array_equal(pixels, np.repeat(np.tile(np.arange(256), (4, 1))[..., None], 3, axis=2))
    Image.fromarray(gradient16.astype(np.int32)).save(tmp_path / "g32.tif")  # mode I
    assert Image.open(tmp_path / "g32.tif").mode == "I"
    np.testing.assert_array_equal(np.asarray(open_rgb(tmp_path / "g32.tif")), pixels)


def refuse_writes(monkeypatch, folder: Path, code: int = errno.EACCES, folders: bool = True) -> None:
    """New files (and folders) under `folder` fail with `code`, as in a read-only folder (EACCES, EROFS) or
    on a full disk (ENOSPC; folders=False: a new folder may still fit, as on tmpfs). Tests run as root,
    where chmod does not stop writes, hence the patch."""
    folder = folder.absolute()
    real_open, real_mkdir = os.open, os.mkdir

    def refused(path) -> bool:
        path = Path(os.fspath(path)).absolute()
        return path == folder or folder in path.parents

    def open_(path, flags, mode=0o777, *args, **kwargs):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR) and refused(path):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_open(path, flags, mode, *args, **kwargs)

    def mkdir(path, mode=0o777, *args, **kwargs):
        if folders and refused(path):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_mkdir(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


READ_ONLY_RUN = {"tune": ["tune", "{run}"],
                 "evaluate": ["evaluate", "{run}", "--labels", "{labels}", "--split", "all", "--quiet"],
                 "export": ["export", "{run}"],
                 "predict-onnx": ["predict", "{run}", "--images", "{images}", "--out", "{tmp}/p.csv",
                                  "--format", "csv", "--runtime", "onnx", "--quiet"],
                 "train-resume": ["train", "--out", "{run}", "--resume"]}


@pytest.mark.parametrize("command", list(READ_ONLY_RUN))
def test_a_read_only_run_is_named_in_one_line_and_left_as_it_was(shared_run, tmp_path: Path, monkeypatch, capsys,
                                                                   command: str) -> None:
    run, labels, images = shared_run
    argv = [a.format(run=run, labels=labels, images=images[0].parent, tmp=tmp_path) for a in READ_ONLY_RUN[command]]
    before = snapshot(run)
    capsys.readouterr()
    refuse_writes(monkeypatch, run)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"fashionstyle {argv[0]}: error: {run}") and err[-1].endswith(": permission denied"), err
    monkeypatch.undo()
    assert snapshot(run) == before and not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("command", ["predict", "explain", "train"])
def test_out_in_a_read_only_folder_is_named_in_one_line(shared_run, tmp_path: Path, monkeypatch, capsys,
                                                        command: str) -> None:
    run, labels, images = shared_run
    out = tmp_path / "locked" / "out"
    argv = {"predict": ["predict", str(run), "--images", str(images[0].parent), "--out", str(out), "--quiet"],
            "explain": ["explain", str(run), "--images", str(images[0]), "--out", str(out)],
            "train": ["train", "--labels", str(labels), "--out", str(out), *TINY_TRAIN]}[command]
    (tmp_path / "locked").mkdir()
    refuse_writes(monkeypatch, tmp_path / "locked", errno.EROFS)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"fashionstyle {command}: error: {out}") and err[-1].endswith("read-only file system")
    assert list((tmp_path / "locked").iterdir()) == []


def test_a_disk_that_fills_at_the_end_of_training_leaves_a_resumable_run(tmp_path: Path, monkeypatch, capsys) -> None:
    from conftest import make_image_set

    labels = make_image_set(tmp_path / "data", n=32)
    run = tmp_path / "run"
    write_atomic = atomic.write_atomic

    def full_at_model(path, write):
        if Path(path).name == "model.pt":
            return write_atomic(path, lambda f: (f.write(b"half"), write_full()))
        return write_atomic(path, write)

    def write_full():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "write_atomic", full_at_model)
    assert main(["train", "--labels", str(labels), "--out", str(run), *TINY_TRAIN]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"fashionstyle train: error: {run / 'model.pt'}: no space left on device"
    assert not (run / "model.pt").exists() and not list(run.rglob("*.part"))
    assert not RunDir(run).manifest()["complete"]
    monkeypatch.undo()  # space freed
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert RunDir.open(run).manifest()["complete"]


def test_predict_on_a_full_disk_is_named_in_one_line_and_leaves_no_output(shared_run, tmp_path: Path, monkeypatch,
                                                                          capsys) -> None:
    run, _, images = shared_run
    out = tmp_path / "pred.csv"
    argv = ["predict", str(run), "--images", str(images[0].parent), "--out", str(out), "--format", "csv", "--quiet"]
    refuse_writes(monkeypatch, tmp_path, errno.ENOSPC, folders=False)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"fashionstyle predict: error: {tmp_path}")
    assert err[-1].endswith("no space left on device")
    assert list(tmp_path.iterdir()) == []  # no output, no parts folder that would refuse the next try
    monkeypatch.undo()  # space freed
    assert main(argv) == 0 and out.is_file()
