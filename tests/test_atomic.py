"""Atomic writes: the permissions an ordinary write gives, and a failed write that leaves nothing behind."""
from __future__ import annotations

import errno
import os
import signal
import stat
from pathlib import Path

import pytest
import torch

from conftest import tiny_run
from fashionstyle.core import atomic
from fashionstyle.core.atomic import signals_deferred


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class umask:
    """The process umask set to `mask` inside the block."""

    def __init__(self, mask: int):
        self.mask = mask

    def __enter__(self) -> None:
        self.old = os.umask(self.mask)

    def __exit__(self, *exc: object) -> None:
        os.umask(self.old)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_new_file_gets_the_permissions_of_an_ordinary_write(tmp_path: Path, mask: int, expected: int) -> None:
    with umask(mask):
        path = atomic.write_text(tmp_path / "new.json", "{}")
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
    assert mode(path) == mode(plain) == expected


def test_a_rewritten_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.json"
    path.write_text("old")
    path.chmod(0o640)
    with umask(0o022):
        atomic.write_text(path, "new")
    assert path.read_text() == "new" and mode(path) == 0o640


def test_every_file_of_a_run_and_its_onnx_export_is_readable_by_others_under_umask_022(tmp_path: Path) -> None:
    from fashionstyle.cli import main

    with umask(0o022):
        run, labels, images = tiny_run(tmp_path)
        assert main(["export", str(run)]) == 0
        assert main(["predict", str(run), "--images", str(labels.parent / "img"), "--out",
                     str(tmp_path / "pred.csv"), "--format", "csv", "--quiet"]) == 0
    files = [p for p in run.rglob("*") if p.is_file()] + [tmp_path / "pred.csv"]
    names = {p.name for p in files}
    assert {"model.pt", "config.yaml", "thresholds.json", "last.ckpt", "best.ckpt", "model.onnx"} <= names
    assert {p.relative_to(tmp_path): oct(mode(p)) for p in files if mode(p) != 0o644} == {}


def test_a_write_that_fails_leaves_the_old_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.json"
    path.write_text("old")

    def disk_full(f) -> None:
        f.write(b"half of it")
        raise OSError(errno.ENOSPC, "No space left on device")  # a full disk's error names no file

    with pytest.raises(OSError) as err:
        atomic.write_atomic(path, disk_full)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert path.read_text() == "old" and sorted(tmp_path.iterdir()) == [path]


def test_a_folder_that_refuses_new_files_is_named_by_the_target(tmp_path: Path, monkeypatch) -> None:
    real_open = os.open

    def read_only(file, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", file)
        return real_open(file, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(PermissionError) as err:
        atomic.write_text(tmp_path / "model.pt", "x")
    assert err.value.filename == str(tmp_path / "model.pt")  # not the temporary file's name
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_behind_torch_save_s_runtime_error_is_named_as_such(tmp_path: Path) -> None:
    def torch_save(f) -> None:  # as torch.save on a full disk: its zip writer fails again on closing
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 464320 vs 464216")

    with pytest.raises(OSError) as err:
        atomic.write_atomic(tmp_path / "last.ckpt", torch_save)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "last.ckpt")
    assert list(tmp_path.iterdir()) == []

    def other_error(f) -> None:
        raise RuntimeError("not a disk error")

    with pytest.raises(RuntimeError, match="not a disk error"):  # passes unchanged
        atomic.write_atomic(tmp_path / "x", other_error)


class SignalOnWrite:
    """A file whose third write is interrupted by `signum`, as a loader worker dying mid-checkpoint."""

    def __init__(self, f, signum: int):
        self.f, self.signum, self.writes = f, signum, 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes == 3:
            os.kill(os.getpid(), self.signum)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


@pytest.fixture
def sigchld_raises():
    """PyTorch's loader handler: SIGCHLD from a dead worker raises RuntimeError in the main thread."""
    def dying_worker(signum, frame):
        raise RuntimeError("DataLoader worker (pid 1) exited unexpectedly")
    previous = signal.signal(signal.SIGCHLD, dying_worker)
    yield
    signal.signal(signal.SIGCHLD, previous)


def test_a_signal_during_torch_save_is_handled_once_the_checkpoint_is_whole(tmp_path: Path, sigchld_raises) -> None:
    """An error raised part-way through torch.save breaks its zip writer (CI saw the process abort)."""
    checkpoint = {"a": torch.zeros(5000), "b": torch.ones(5000)}
    path = tmp_path / "last.ckpt"
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        atomic.write_atomic(path, lambda f: torch.save(checkpoint, SignalOnWrite(f, signal.SIGCHLD)))
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["a"], checkpoint["a"]) and torch.equal(loaded["b"], checkpoint["b"])
    assert sorted(tmp_path.iterdir()) == [path]
    assert signal.getsignal(signal.SIGCHLD).__name__ == "dying_worker"  # its own handler is back


def test_signals_received_while_deferred_each_run_their_handler_once_in_order(sigchld_raises) -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda n, _: seen.append(n))
    try:
        with pytest.raises(RuntimeError):
            with signals_deferred((signal.SIGUSR1, signal.SIGCHLD)):
                for signum in (signal.SIGUSR1, signal.SIGCHLD, signal.SIGUSR1):
                    os.kill(os.getpid(), signum)
                assert seen == []
        assert seen == [signal.SIGUSR1]  # its handler ran, though SIGCHLD's raised
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_ctrl_c_during_a_write_that_fails_is_raised_as_ctrl_c_and_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.json"
    path.write_text("old")

    def interrupted_then_full(f) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # deferred: KeyboardInterrupt comes once the write is over
        f.write(b"half of it")
        raise OSError(errno.ENOSPC, "No space left on device")

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            atomic.write_atomic(path, interrupted_then_full)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert path.read_text() == "old" and sorted(tmp_path.iterdir()) == [path]
