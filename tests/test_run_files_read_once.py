"""A command opens each run file for reading once, and checks it once: RunDir keeps what it read and checked
while the file is unchanged, and reads it again when a write replaced it."""
from __future__ import annotations

import builtins
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from fashionstyle.cli import main
from fashionstyle.core import run as run_module
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir


def _count_reads(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Counter:
    """Counts, by name relative to `folder`, the files under it opened for reading from now on."""
    opened: Counter = Counter()
    real = io.open
    root = folder.resolve()

    def counting_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, Path)) and "r" in mode and "+" not in mode:
            path = Path(file).resolve()
            if root in path.parents:
                opened[str(path.relative_to(root))] += 1
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    return opened


def test_predict_opens_each_run_file_once_and_checks_the_label_names_once(shared_run, tmp_path, monkeypatch):
    checks = Counter()
    real_check = run_module.checked_label_names
    monkeypatch.setattr(run_module, "checked_label_names", lambda *a: checks.update(["labels"]) or real_check(*a))
    opened = _count_reads(monkeypatch, shared_run.run)
    assert main(["predict", str(shared_run.run), "--images", str(shared_run.images[0].parent),
                 "--out", str(tmp_path / "p.csv")]) == 0
    assert opened and max(opened.values()) == 1, opened
    assert {"labels.json", "thresholds.json", "manifest.json", "model.pt"} <= set(opened)
    assert checks["labels"] == 1


def test_a_run_file_replaced_meanwhile_is_read_again(run_copy):
    run = RunDir(run_copy.run)
    names = run.label_names()
    names.append("changed by its caller")  # a copy: the next caller gets the file's names
    assert run.label_names() == names[:-1]
    (run_copy.run / "labels.json").write_text(json.dumps({"label_names": ["x", "y", "z", "w"]}))
    assert run.label_names() == ["x", "y", "z", "w"]
    (run_copy.run / "labels.json").write_text("{")
    with pytest.raises(FashionStyleError, match="corrupt JSON"):
        run.label_names()


def test_train_reads_each_run_file_it_wrote_at_most_once(image_set, tmp_path, monkeypatch):
    from conftest import TINY_TRAIN

    run = tmp_path / "run"
    opened = _count_reads(monkeypatch, tmp_path)
    assert main(["train", "--labels", str(image_set), "--out", str(run), *TINY_TRAIN, "--epochs", "1"]) == 0
    run_files = {name: n for name, n in opened.items() if name.startswith("run/") and "/logs/" not in f"/{name}"}
    assert {"run/history.csv", "run/labels.json"} <= set(run_files), run_files
    assert max(run_files.values()) == 1, run_files
