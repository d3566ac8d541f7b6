"""What a user can get wrong is refused in one line (exit 2) before anything is written or lost:
wrong paths, numbers out of range, a flag that would be ignored, a resume with other data."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_TRAIN, fingerprint, make_image_set
from fashionstyle.cli import main
from fashionstyle.core import atomic
from fashionstyle.core.config import TrainConfig
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from test_overwrite import minimal_run, refused


def one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# -- tune ------------------------------------------------------------------------------
def test_tune_refuses_labels_it_would_not_read(run_copy, capsys) -> None:
    before = fingerprint(run_copy.run)
    err = one_line_error(["tune", str(run_copy.run), "--labels", str(run_copy.labels)], capsys)
    assert "--labels" in err and "drop --labels" in err
    assert fingerprint(run_copy.run) == before


def test_tune_with_a_bad_beta_fails_before_predicting_or_writing(run_copy, capsys) -> None:
    before = fingerprint(run_copy.run)
    err = one_line_error(["tune", str(run_copy.run), "--tta", "flip", "--beta", "0"], capsys)
    assert "beta must be a finite number in (0, 100]" in err
    assert fingerprint(run_copy.run) == before  # no flip probabilities under the old TTA


# -- evaluate --------------------------------------------------------------------------
def test_evaluate_refuses_to_score_the_training_file_without_a_split_column(tmp_path: Path) -> None:
    from fashionstyle.analysis.evaluate import evaluation_split
    from fashionstyle.data.labels.read import read_labels

    labels = make_image_set(tmp_path / "data", n=4, with_split=False)
    held_out = make_image_set(tmp_path / "other", n=4, with_split=False)
    with_splits = make_image_set(tmp_path / "split", n=4)
    run = RunDir(minimal_run(tmp_path / "run"))
    atomic.write_text(run / "config.yaml", f"labels: {labels}\n")
    with pytest.raises(FashionStyleError, match="every row would be scored, the training images too"):
        evaluation_split(run, read_labels(str(labels)), None)
    assert evaluation_split(run, read_labels(str(labels)), "all") == "all"  # asked for: scored
    assert evaluation_split(run, read_labels(str(held_out)), None) == "all"
    assert evaluation_split(run, read_labels(str(with_splits)), None) == "test"
    for table in (read_labels(str(with_splits)), read_labels(str(held_out))):  # a typo named first, split column or not
        with pytest.raises(FashionStyleError, match="unknown split 'tset'"):
            table.split(evaluation_split(run, table, "tset"))


def test_evaluate_reads_a_relative_label_path_as_a_resume_does_and_checks_the_validation_ids(
        tmp_path: Path, monkeypatch) -> None:
    from fashionstyle.analysis.evaluate import evaluation_split
    from fashionstyle.data.labels.read import read_labels

    run = RunDir(minimal_run(tmp_path / "run"))
    atomic.write_text(run / "config.yaml", "labels: labels.csv\n")  # as given where training ran
    here = make_image_set(tmp_path / "elsewhere", n=4, with_split=False)  # another folder's labels.csv
    monkeypatch.chdir(here.parent)
    table = read_labels("labels.csv")
    run.write_val_probs(["photos/a.jpg"], np.zeros((1, 3)), np.zeros((1, 3)))  # not among this file's rows
    assert evaluation_split(run, table, None) == "all"
    run.write_val_probs(table.ids[:2], np.zeros((2, 3)), np.zeros((2, 3)))  # the run's validation rows are here
    with pytest.raises(FashionStyleError, match="every row would be scored"):
        evaluation_split(run, table, None)


# -- predict ---------------------------------------------------------------------------
def test_predict_refuses_an_out_that_names_an_image(tmp_path: Path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=2)
    photo = tmp_path / "data" / "img" / "000.jpg"
    run = minimal_run(tmp_path / "run")
    err = refused(["predict", str(run), "--images", str(labels.parent / "img"), "--out", str(photo)], photo,
                  capsys)
    assert "names an image" in err and ".csv" in err


def test_predict_writes_nothing_when_no_image_can_be_read(shared_run, tmp_path: Path, capsys) -> None:
    listed = tmp_path / "list.csv"
    listed.write_text("a,img/missing_a.jpg\nb,img/missing_b.jpg\n")
    out = tmp_path / "preds.txt"
    err = one_line_error(["predict", str(shared_run.run), "--images", str(listed), "--out", str(out),
                          "--quiet"], capsys)
    assert "none of the 2 images could be read" in err and "--image-dir" in err
    assert not out.exists() and not list(tmp_path.glob("*.parts"))
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(b"not a photo")
    err = one_line_error(["predict", str(shared_run.run), "--images", str(folder), "--out", str(out), "--quiet"],
                         capsys)
    assert "none of the 2 images could be read" in err and "--image-dir" not in err  # the hint is a list's
    assert not out.exists()


# -- export ----------------------------------------------------------------------------
def test_export_refuses_to_write_into_another_run(tmp_path: Path, capsys) -> None:
    run, other = minimal_run(tmp_path / "run"), minimal_run(tmp_path / "other")
    before = fingerprint(other)
    for extra in ([], ["--format", "hub"]):
        err = one_line_error(["export", str(run), "--out", str(other), *extra], capsys)
        assert "holds a run (manifest.json)" in err
    assert fingerprint(other) == before


def test_export_refuses_an_opset_the_hub_format_would_ignore(tmp_path: Path, capsys) -> None:
    run = minimal_run(tmp_path / "run")
    err = one_line_error(["export", str(run), "--format", "hub", "--opset", "13", "--out", str(tmp_path / "h")],
                         capsys)
    assert "--opset applies to --format onnx only" in err and not (tmp_path / "h").exists()


# -- fuse / select ---------------------------------------------------------------------
@pytest.mark.parametrize("command", ["fuse", "select"])
def test_fuse_and_select_check_beta_before_writing(command, shared_run, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    err = one_line_error([command, str(shared_run.run), "--beta", "0", "--out", str(out)], capsys)
    assert "beta must be" in err and not out.exists()


def test_a_new_run_may_go_into_an_empty_folder_or_a_new_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for free in (tmp_path / "empty", tmp_path / "new" / "run"):
        RunDir(free).refuse_taken()  # no refusal
    (tmp_path / "empty" / "x").write_text("mine")
    with pytest.raises(FashionStyleError, match="already exists and is not empty"):
        RunDir(tmp_path / "empty").refuse_taken()


def test_a_command_without_resume_does_not_suggest_it(shared_run, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("mine")
    err = one_line_error(["fuse", str(shared_run.run), "--out", str(out)], capsys)
    assert "already exists and is not empty; choose another --out" in err and "--resume" not in err


# -- file system errors and numbers ----------------------------------------------------
def test_out_that_is_a_file_or_a_folder_is_one_line(tmp_path: Path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=16)
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    err = one_line_error(["train", "--labels", str(labels), "--out", str(taken), *TINY_TRAIN], capsys)
    assert "is a file; --out names the folder of a new run" in err and taken.read_text() == "mine"
    err = one_line_error(["download", str(tmp_path / "data"), "--out", str(tmp_path / "imgs"), "--quiet"], capsys)
    assert "is a folder, not a file" in err


@pytest.mark.parametrize("argv, says", [
    (["predict", "RUN", "--images", "x", "--out", "p.csv", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["evaluate", "RUN", "--labels", "x", "--num-workers", "-1"], "--num-workers: must be at least 0"),
    (["cache", "x", "--image-size", "0", "--out", "c"], "--image-size: must be at least 1"),
    (["serve", "RUN", "--port", "70000"], "--port: must be in 0..65535, got 70000"),
    (["predict", "RUN", "--images", "x", "--out", "p.csv", "--chunk-size", "ten"], "not a whole number: 'ten'"),
    (["predict", "RUN", "--images", "x", "--out", "p.csv", "--devices", "0"], "--devices: must be at least 1"),
    (["evaluate", "RUN", "--labels", "x", "--num-nodes", "0"], "--num-nodes: must be at least 1"),
    (["download", "l.txt", "--out", "d", "--retries", "-1"], "--retries: must be at least 0"),
    (["demo", "--n-images", "0"], "--n-images: must be at least 50"),
    (["explain", "RUN", "--images", "x", "--out", "o", "--labels-to-show", "0"],
     "--labels-to-show: must be at least 1"),
])
def test_numbers_out_of_range_are_refused_by_the_parser(argv, says, capsys) -> None:
    assert says in one_line_error(argv, capsys)


def test_config_refuses_negative_loader_workers() -> None:
    with pytest.raises(FashionStyleError, match="--num-workers must be a finite number in"):
        TrainConfig(labels="x.csv", num_workers=-1).validate()


@pytest.mark.parametrize("name", ["devices", "num_nodes"])
def test_config_refuses_no_devices_or_nodes(name: str) -> None:  # Lightning's traceback, a half-made run before
    with pytest.raises(FashionStyleError, match=f"must be a finite number in .*, got 0 \\(config {name}\\)"):
        TrainConfig(labels="x.csv", **{name: 0}).validate()


# -- single-label models and resumes ---------------------------------------------------
def test_single_mode_refuses_labels_that_would_share_a_folder() -> None:
    from fashionstyle.training.single_label import check_label_folders

    check_label_folders(["Casual", "Smart casual", "Street"])
    for names in (["Smart casual", "Smart_casual"], ["Casual", "casual"]):
        with pytest.raises(FashionStyleError, match="would share the model folder"):
            check_label_folders(names)


@pytest.mark.slow
def test_cv_resume_refuses_changed_labels_or_epochs_once_folds_are_finished(tmp_path: Path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=24)
    out = tmp_path / "cv"
    argv = ["cv", "--labels", str(labels), "--out", str(out), "--folds", "2", *TINY_TRAIN, "--epochs", "1"]
    assert main(argv) == 0
    assert main([*argv, "--resume"]) == 0  # the same settings and data: resumed (nothing left to train)
    before = fingerprint(out)
    err = one_line_error([*argv[:-1], "2", "--resume"], capsys)  # a constant schedule: a plain run may grow
    assert "keeps the 1 epochs its finished folds trained, not 2" in err and fingerprint(out) == before
    lines = labels.read_text().splitlines()
    first = lines[1].split(",")
    first[-1] = "0" if first[-1] == "1" else "1"  # one label of one photo changed
    labels.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    before = fingerprint(out)
    err = one_line_error([*argv, "--resume"], capsys)
    assert "--resume needs the data the run was trained on, and it changed" in err
    assert fingerprint(out) == before
    assert np.isfinite(RunDir(out).val_probs()[1]).all()


def test_export_hub_refuses_a_folder_of_someone_elses_files(tmp_path: Path, capsys) -> None:
    run, out = minimal_run(tmp_path / "run"), tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text("my own notes")
    (out / "config.json").write_text("{}")
    before = fingerprint(out)
    err = one_line_error(["export", str(run), "--format", "hub", "--out", str(out)], capsys)
    assert "not empty and not a hub folder written by fashionstyle" in err
    assert fingerprint(out) == before


# -- a lock per run ----------------------------------------------------------------------
HOLD_LOCK = ("import sys, time\nfrom fashionstyle.core.run import RunDir\nRunDir(sys.argv[1]).lock()\n"
             "print('held', flush=True)\ntime.sleep(120)\n")


@contextlib.contextmanager
def locked_by_another_process(run: Path) -> Iterator[int]:
    """`run`'s lock held by a child process (as a first `train --resume` holds it) until the block ends."""
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_a_second_train_resume_of_one_run_is_refused_in_one_line(run_copy, capsys) -> None:
    run = RunDir(run_copy.run)
    manifest = run.manifest()
    atomic.write_json(run / "manifest.json", {**manifest, "complete": False})  # stopped: resumable
    with locked_by_another_process(run.path) as pid:
        before = fingerprint(run.path)
        assert main(["train", "--labels", str(run_copy.labels), "--out", str(run.path), *TINY_TRAIN,
                     "--epochs", "1", "--resume"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "ValueError" not in err
        assert f"the run is in use by another process (pid {pid})" in err and "wait for it" in err
        assert fingerprint(run.path) == before
    RunDir.create(run.path, resume=True).unlock()  # free again once the first writer is gone


def test_the_lock_does_not_make_a_new_run_folder_look_taken(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "run")
    assert (run / ".lock").is_file()
    RunDir.create(tmp_path / "run")  # the same process again (distill makes its --out before the student)
    run.unlock()
    run.refuse_taken()
