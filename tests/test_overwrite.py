"""Every command that writes refuses to overwrite one of its inputs (one line, exit 2, the input untouched)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import LABELS, make_image_set
from fashionstyle.cli import main
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.overwrite import refuse_overwriting_inputs
from fashionstyle.core.run import RunDir
from fashionstyle.core.thresholds import ThresholdTuner


def test_same_path_by_resolving_or_by_file_identity(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("image,A\na.jpg,1\n")
    (tmp_path / "sub").mkdir()
    os.link(labels, tmp_path / "hard.csv")
    (tmp_path / "soft.csv").symlink_to(labels)
    for out in (labels, tmp_path / "sub" / ".." / "labels.csv", tmp_path / "hard.csv", tmp_path / "soft.csv"):
        with pytest.raises(FashionStyleError) as err:
            refuse_overwriting_inputs({"--out": out}, {"--labels": labels})
        assert str(err.value) == f"{out}: would overwrite the input --labels {labels}; choose another --out"
    refuse_overwriting_inputs({"--out": tmp_path / "other.csv", "--cleaned": None},
                              {"--labels": labels, "--images": None})  # different, or not given: fine
    with pytest.raises(FashionStyleError, match="choose another --cleaned"):
        refuse_overwriting_inputs({"--out": tmp_path / "i.csv", "--cleaned": [None, labels]}, {"--labels": [labels]})


def minimal_run(path: Path) -> Path:
    """A complete run directory with labels and thresholds (no model: the refusal comes first)."""
    run = RunDir.create(path)
    run.write_label_names(list(LABELS))
    probs = np.random.default_rng(0).random((8, 3))
    run.write_thresholds(ThresholdTuner().fit(probs, (probs > 0.5).astype(np.uint8)))
    run.write_manifest("model", complete=True)
    return run.path


def refused(argv: list[str], kept: Path, capsys) -> str:
    before = kept.read_bytes()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert kept.read_bytes() == before and "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


def test_audit_refuses_out_on_the_label_file_or_the_runs_files(tmp_path: Path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=8)
    run = minimal_run(tmp_path / "run")
    err = refused(["audit", str(run), "--labels", str(labels), "--out", str(labels)], labels, capsys)
    assert f"{labels}: would overwrite the input --labels {labels}; choose another --out" in err
    out = tmp_path / "issues.csv"
    err = refused(["audit", str(run), "--labels", str(labels), "--out", str(out), "--fix", "flip",
                   "--cleaned", str(labels)], labels, capsys)
    assert "would overwrite the input --labels" in err and "choose another --cleaned" in err
    thresholds = run / "thresholds.json"
    err = refused(["audit", str(run), "--labels", str(labels), "--out", str(thresholds)], thresholds, capsys)
    assert "would overwrite the input run" in err


def test_predict_refuses_out_on_its_list_or_the_runs_files(tmp_path: Path, capsys) -> None:
    run = minimal_run(tmp_path / "run")
    listed = tmp_path / "list.txt"
    listed.write_text("a,http://x/a.jpg\n")
    err = refused(["predict", str(run), "--images", str(listed), "--out", str(listed)], listed, capsys)
    assert f"would overwrite the input --images {listed}; choose another --out" in err
    thresholds = run / "thresholds.json"
    err = refused(["predict", str(run), "--images", str(listed), "--out", str(thresholds), "--format", "json"],
                  thresholds, capsys)
    assert f"would overwrite the input run {thresholds}" in err


def test_cache_download_and_report_refuse_their_input_file(tmp_path: Path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=4)
    err = refused(["cache", str(labels), "--image-size", "32", "--out", str(labels), "--quiet"], labels, capsys)
    assert f"would overwrite the input source {labels}" in err
    listed = tmp_path / "imgs" / "download_failures.csv"  # retrying a failures file into its own folder
    listed.parent.mkdir()
    listed.write_text("a,http://127.0.0.1:9/a.jpg\n")
    err = refused(["download", str(listed), "--out", str(listed.parent), "--quiet"], listed, capsys)
    assert f"would overwrite the input list {listed}" in err
    run = minimal_run(tmp_path / "run")
    err = refused(["report", str(run), "--labels", str(labels), "--out", str(labels)], labels, capsys)
    assert "would overwrite the input --labels" in err


def test_export_refuses_to_write_into_the_run_or_over_the_export_it_quantises(tmp_path: Path, capsys) -> None:
    run = minimal_run(tmp_path / "run")
    labels = run / "labels.json"
    assert "would overwrite the input run" in refused(["export", str(run), "--out", str(run)], labels, capsys)
    (run / "onnx").mkdir()
    err = refused(["export", str(run), "--quantize", "int8", "--out", str(run / "onnx")], labels, capsys)
    assert "would overwrite the input fp32 export" in err


def test_suggest_refuses_out_on_the_runs_label_file_or_its_inputs_even_with_resume_or_overwrite(
        tmp_path: Path, capsys) -> None:
    labels = make_image_set(tmp_path / "data", n=4)
    run = minimal_run(tmp_path / "run")
    (run / "config.yaml").write_text(f"labels: {labels}\n")  # the label file the run trained on
    photos = str(labels.parent / "img")
    for flag in ([], ["--resume"], ["--overwrite"]):
        err = refused(["suggest", str(run), "--images", photos, "--out", str(labels), *flag], labels, capsys)
        assert f"{labels}: would overwrite the input run's label file {labels}; choose another --out" in err
    listed = tmp_path / "catalogue.csv"
    listed.write_text("image\n" + "".join(f"{p}\n" for p in sorted((labels.parent / "img").iterdir())))
    err = refused(["suggest", str(run), "--images", str(listed), "--out", str(listed), "--overwrite"], listed, capsys)
    assert f"would overwrite the input --images {listed}; choose another --out" in err
    more = tmp_path / "more.csv"
    more.write_text("image,Red\nx.jpg,1\n")
    err = refused(["suggest", str(run), "--images", photos, "--labelled", str(more), "--out", str(more),
                   "--resume"], more, capsys)
    assert "would overwrite the input --labelled" in err
    config = tmp_path / "to_label.label_config.xml"  # the tasks' config is an output too
    config.symlink_to(more)
    err = refused(["suggest", str(run), "--images", photos, "--labelled", str(more), "--out", str(tmp_path / "o.csv"),
                   "--tasks", str(tmp_path / "to_label.json"), "--overwrite"], more, capsys)
    assert f"{config}: would overwrite the input --labelled {more}; choose another --tasks" in err
