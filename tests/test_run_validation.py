"""A run's own files are checked before any command trusts them (issue 33): thresholds, labels, members,
config.yaml; one line naming the file and the field, and nothing written before the check."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import LABELS, fingerprint
from fashionstyle.cli import main
from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from test_overwrite import minimal_run


def one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))  # NaN written as the NaN literal Python's json reads back


@pytest.mark.parametrize(("value", "shown"), [(float("nan"), "nan"), (None, "None"), (-0.5, "-0.5"), (1.5, "1.5"),
                                              ("0.5", "'0.5'"), (True, "True")])
def test_a_threshold_that_is_not_a_number_in_0_1_is_refused_naming_file_and_field(tmp_path, value, shown) -> None:
    run = minimal_run(tmp_path / "run")
    edit_json(run / "thresholds.json", lambda d: d["thresholds"].__setitem__(1, value))
    with pytest.raises(FashionStyleError, match=rf"thresholds.json: thresholds\[1\] must be a number in \[0, 1\], "
                                                rf"got {shown}"):
        RunDir.open(run)


def test_a_nan_threshold_stops_predict_before_it_writes(shared_run, tmp_path, capsys) -> None:
    run = Path(__import__("shutil").copytree(shared_run.run, tmp_path / "run"))
    edit_json(run / "thresholds.json", lambda d: d["thresholds"].__setitem__(0, float("nan")))
    out = tmp_path / "tags.csv"
    err = one_line_error(["predict", str(run), "--images", str(shared_run.images[0]), "--out", str(out)], capsys)
    assert "thresholds.json: thresholds[0]" in err and not out.exists()


def test_thresholds_of_another_label_count_are_refused(tmp_path) -> None:
    run = minimal_run(tmp_path / "run")
    edit_json(run / "thresholds.json", lambda d: [d[k].append(d[k][0]) for k in ("thresholds", "best_fbeta", "tuned")])
    with pytest.raises(FashionStyleError, match="thresholds.json: thresholds has 4 values for the 3 labels"):
        RunDir.open(run)


def test_labels_listed_twice_are_refused(tmp_path) -> None:
    run = minimal_run(tmp_path / "run")
    atomic.write_json(run / "labels.json", {"label_names": ["Red", "Red", "Dotted"]})
    with pytest.raises(FashionStyleError, match="labels.json: label_names: Red listed more than once"):
        RunDir.open(run)


def with_members(run: Path, members) -> Path:
    atomic.write_json(run / "members.json", {"members": members})
    return run


@pytest.mark.parametrize(("members", "message"), [
    ([], "members must be a non-empty list"),
    ([{"model": "model.pt", "labels": list(LABELS), "weight": -1}], r"members\[0\].weight must be a finite number > 0, got -1"),
    ([{"model": "model.pt", "labels": list(LABELS), "weight": 0}], r"members\[0\].weight must be a finite number > 0, got 0"),
    ([{"model": "model.pt", "labels": list(LABELS), "weight": "1"}], r"members\[0\].weight must be a finite number > 0, got '1'"),
    ([{"model": "model.pt", "labels": list(LABELS), "weight": float("nan")}], r"members\[0\].weight"),
    ([{"model": "model.pt", "labels": ["Red", "Red", "Striped", "Dotted"], "weight": 1}],
     r"members\[0\].labels: Red listed more than once"),
    ([{"model": "model.pt", "labels": ["Red", "Blue"], "weight": 1}], r"members\[0\].labels: Blue not among"),
    ([{"model": "model.pt", "labels": ["Red", "Striped"], "weight": 1}], "members.json: no member gives Dotted"),
])
def test_bad_members_are_refused_in_one_line(tmp_path, members, message) -> None:
    run = with_members(minimal_run(tmp_path / "run"), members)
    with pytest.raises(FashionStyleError, match=message):
        RunDir.open(run)


def test_a_negative_member_weight_stops_predict(tmp_path, capsys) -> None:
    run = with_members(minimal_run(tmp_path / "run"), [{"model": "model.pt", "labels": list(LABELS), "weight": -1}])
    err = one_line_error(["predict", str(run), "--images", str(tmp_path), "--out", str(tmp_path / "t.csv")], capsys)
    assert "members.json: members[0].weight" in err and not (tmp_path / "t.csv").exists()


@pytest.mark.parametrize(("text", "message"), [("- a\n- b\n", "expected a mapping"),
                                               ("a: [1,\n", "not valid YAML"),
                                               ("label_names: [Red, Dotted]\n", "label_names .* differ")])
@pytest.mark.parametrize("command", ["tune", "evaluate"])
def test_a_bad_config_yaml_stops_tune_and_evaluate_before_they_write(tmp_path, capsys, text, message,
                                                                      command) -> None:
    run = minimal_run(tmp_path / "run")
    (run / "config.yaml").write_text(text)
    before = fingerprint(run)
    extra = ["--labels", str(tmp_path / "labels.csv")] if command == "evaluate" else []
    err = one_line_error([command, str(run), *extra], capsys)
    assert "config.yaml" in err
    assert re.search(message, err), err
    assert fingerprint(run) == before


def test_a_sound_run_opens(shared_run) -> None:
    assert RunDir.open(shared_run.run).label_names() == list(LABELS)


def test_fuse_refuses_a_nan_weight_and_leaves_a_zero_weight_run_out(shared_run, tmp_path) -> None:
    from fashionstyle.training.fusion import fuse_runs

    with pytest.raises(FashionStyleError, match="--weights needs 2 non-negative numbers"):
        fuse_runs([shared_run.run, shared_run.run], tmp_path / "nan", weights=[1.0, float("nan")])
    assert not (tmp_path / "nan").exists()
    fused = fuse_runs([shared_run.run, shared_run.run], tmp_path / "fused", weights=[1.0, 0.0])
    assert [m.weight for m in RunDir.open(fused.path).members()] == [1.0]  # a weight of 0 is no member


def test_the_api_and_the_service_refuse_a_nan_threshold_at_start(tmp_path) -> None:
    import fashionstyle

    pytest.importorskip("fastapi")
    from fashionstyle.serving.app import create_app

    run = minimal_run(tmp_path / "run")
    edit_json(run / "thresholds.json", lambda d: d["thresholds"].__setitem__(2, float("nan")))
    for start in (fashionstyle.load, create_app):
        with pytest.raises(FashionStyleError, match=r"thresholds.json: thresholds\[2\] must be a number in \[0, 1\]"):
            start(run)
