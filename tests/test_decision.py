"""Operating points: one decide for every door, floors with a confidence bound, per-photo rules, stored in the run."""
from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path

import numpy as np
import pytest

from conftest import LABELS
from fashionstyle.cli import main
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.operating_points import fit_point, floor_threshold, wilson_lower
from fashionstyle.core.run import RunDir

SRC = Path(__file__).resolve().parents[1] / "src" / "fashionstyle"
# Modules allowed to compare a probability with a threshold: the decision itself and the threshold searches.
# training/online_teacher.py makes training targets from tensors on the training device, not a decision.
ALLOWED = {"core/decision.py", "core/thresholds.py", "core/operating_points.py", "training/online_teacher.py"}
COMPARISON = re.compile(r"[\w\].)]+\s*(>=|<=|>|<)\s*[\w.]*threshold|threshold[\w.\[\]]*\s*(>=|<=|>|<)\s*[\w\[(]+")


def _code_only(path: Path) -> str:
    """The file's code without strings and comments (so that docs may say `p >= threshold`)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return " ".join(t.string for t in tokens if t.type not in (tokenize.STRING, tokenize.COMMENT))


def test_no_other_module_compares_a_probability_with_a_threshold():
    found = []
    for path in SRC.rglob("*.py"):
        name = path.relative_to(SRC).as_posix()
        for match in COMPARISON.finditer(_code_only(path)):
            constant = re.search(r"(<=|>=|<|>)\s*[A-Z_0-9.]+$|^[A-Z_0-9.]+\s*(<=|>=|<|>)", match.group(0))
            if name not in ALLOWED and not constant:
                found.append(f"{name}: {match.group(0)}")
    assert not found, "decide through core/decision.py instead:\n" + "\n".join(found)


def test_the_scan_finds_a_comparison():
    code = "labels = probs >= self.thresholds\nhint = [j for j in order if p[j] >= thresholds[j]]"
    assert len(COMPARISON.findall(code)) == 2


def test_the_runs_own_point_decides_as_its_thresholds():
    point = OperatingPoint("f2", np.array([0.5, 0.2, 0.9]))
    probs = np.array([[0.5, 0.1, 0.95], [np.nan, np.nan, np.nan], [0.49, 0.2, 0.1]])
    assert point.decide(probs).tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]


def test_per_photo_rules_cap_groups_and_fill():
    probs = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.1, 0.1, 0.05], [0.6, 0.95, 0.3, 0.9]])
    point = OperatingPoint("p", np.full(4, 0.5), exclusive=((0, 1),), max_labels=2, at_least_one=True)
    decided = point.decide(probs)
    assert decided.tolist() == [[1, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 1]]  # group: the most probable only
    rng = np.random.default_rng(1)
    many = rng.random((500, 4))
    decided = OperatingPoint("q", np.full(4, 0.2), exclusive=((0, 2),), max_labels=2).decide(many)
    assert decided.sum(axis=1).max() <= 2 and not (decided[:, 0] & decided[:, 2]).any()
    never = OperatingPoint("n", np.array([0.5, np.inf, 0.5, 0.5]), at_least_one=True).decide(many)
    assert not never[:, 1].any()


def test_wilson_bound_keeps_small_support_from_claiming_a_floor():
    assert wilson_lower(np.array([5]), np.array([5]))[0] == pytest.approx(0.649, abs=0.002)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    targets = np.array([1, 1, 1, 1, 1, 0])
    assert floor_threshold(scores, targets, "min-precision", 0.9) == np.inf  # 5 of 5 is no proof of 0.9
    big = np.r_[np.linspace(1, 0.5, 200), np.linspace(0.45, 0, 200)]
    truth = np.r_[np.ones(200, int), np.zeros(200, int)]
    t = floor_threshold(big, truth, "min-precision", 0.9)
    assert 0.45 < t <= 0.5  # every positive, no negative
    assert floor_threshold(big, truth, "min-recall", 0.5) > 0.7  # the fewest predictions that prove half


def test_fit_point_meets_the_floor_on_val_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    targets = (rng.random((600, 3)) < 0.3).astype(int)
    probs = np.clip(targets * 0.35 + rng.random((600, 3)) * 0.65, 0, 1)
    point = fit_point("store", probs, targets, list(LABELS), "min-precision", 0.85, max_labels=2,
                      exclusive=[["Red", "Striped"]])
    on = probs >= point.thresholds
    precision = (on & (targets == 1)).sum(0) / on.sum(0)
    assert (precision >= 0.85).all() and (np.array(point.val["precision_low"]) >= 0.85).all()
    again = OperatingPoint.from_dict(json.loads(json.dumps(point.to_dict(LABELS))), LABELS, "x")
    assert (again.decide(probs) == point.decide(probs)).all() and again.exclusive == ((0, 1),)


@pytest.mark.parametrize("kwargs, message", [
    ({"objective": "min-precision", "target": 1.5}, r"min-precision 1.5 must be in \(0, 1\]"),
    ({"objective": "min-recall", "target": 0}, r"min-recall 0 must be in \(0, 1\]"),
    ({"max_labels": 0}, "max labels 0 must be a whole number of at least 1"),
    ({"exclusive": [["Red", "Blue"]]}, "names 'Blue', not a label of the run"),
    ({"exclusive": [["Red", "Striped"], ["Red", "Dotted"]]}, "label 'Red' is in two exclusive groups"),
    ({"exclusive": [["Red"]]}, "needs two labels or more"),
])
def test_bad_points_are_refused_in_one_line(kwargs, message):
    probs, targets = np.random.default_rng(0).random((20, 3)), np.eye(3, dtype=int)[np.arange(20) % 3]
    with pytest.raises(FashionStyleError, match=message):
        fit_point("p", probs, targets, list(LABELS), **kwargs)


def test_tune_stores_a_point_that_every_door_decides_the_same(run_copy, tmp_path, capsys):
    run = run_copy.run
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["tune", str(run), "--operating-point", "store", "--beta", "1", "--max-labels", "1",
                 "--exclusive", "Red,Striped", "--at-least-one"]) == 0
    assert "operating point 'store' written" in capsys.readouterr().out
    card = before.pop("MODEL_CARD.md")  # the card lists the run's points; no other file of the run changes
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name in before} == before
    assert b"## Operating points" not in card and "- store: F1; at most 1 label" in (run / "MODEL_CARD.md").read_text()
    contents = RunDir.open(run).contents()
    assert contents.point_names() == ["f2", "store"]
    folder = tmp_path / "photos"
    folder.mkdir()
    for source in sorted((run_copy.labels.parent / "img").glob("*.jpg"))[:6]:
        (folder / source.name).write_bytes(source.read_bytes())
    images = sorted(folder.glob("*.jpg"))
    from fashionstyle.api import load

    tagger = load(run, operating_point="store")
    records = tagger(images)
    assert all(len(r.labels) == 1 for r in records)  # at most one, at least one
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), "--images", str(folder), "--out", str(out), "--operating-point", "store",
                 "--quiet"]) == 0
    rows = {Path(row.split(",")[0]).name: row.split(",")[1] for row in out.read_text().splitlines()[1:]}
    assert [rows[p.name] for p in images] == [";".join(r.labels) for r in records]
    from fastapi.testclient import TestClient

    from fashionstyle.serving.app import create_app

    client = TestClient(create_app(run))
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in images]
    served = client.post("/predict?operating_point=store", files=files).json()
    assert [r["labels"] for r in served["predictions"]] == [r.labels for r in records]
    assert served["operating_point"] == "store"
    unknown = client.post("/predict?operating_point=nope", files=files)
    assert unknown.status_code == 400 and "this run's: f2, store" in unknown.json()["detail"]
    from fashionstyle.serving.label_studio import pre_annotation_point

    stored = create_app(run, operating_point="store")
    assert pre_annotation_point(stored).name == "store"  # the Label Studio backend's pre-annotations too
    assert pre_annotation_point(create_app(run)).name == "labelling"  # none named: a labelling point, not f2
    default = TestClient(stored).post("/predict", files=files).json()
    assert [r["labels"] for r in default["predictions"]] == [r.labels for r in records]
    expected = {p.name: r.labels for p, r in zip(images, records)}
    skeleton, tasks = tmp_path / "s.csv", tmp_path / "s.json"
    assert main(["suggest", str(run), "--images", str(folder), "--n", "6", "--strategy", "random", "--out",
                 str(skeleton), "--tasks", str(tasks), "--label-studio-root", str(folder), "--operating-point",
                 "store", "--quiet"]) == 0
    import csv

    with skeleton.open(newline="") as f:
        hints = {Path(row["image"]).name: [h.rsplit(" ", 1)[0] for h in row["hint"].split(";") if h]
                 for row in csv.DictReader(f)}
    assert hints == expected
    ticked = {t["data"]["image"].rsplit("=", 1)[1]: (t["predictions"][0]["result"] or [{"value": {"choices": []}}])
              [0]["value"]["choices"] for t in json.loads(tasks.read_text())}
    assert ticked == expected


def test_tune_refuses_a_taken_name_and_rules_without_a_name(run_copy, capsys):
    run = str(run_copy.run)
    assert main(["tune", run, "--operating-point", "p", "--max-labels", "2"]) == 0
    capsys.readouterr()
    assert main(["tune", run, "--operating-point", "p", "--max-labels", "3"]) == 2
    assert "operating point 'p' is taken" in capsys.readouterr().err
    assert main(["tune", run, "--operating-point", "f2"]) == 2
    assert "the run's own point" in capsys.readouterr().err
    assert main(["tune", run, "--max-labels", "2"]) == 2
    assert "name it with --operating-point NAME" in capsys.readouterr().err
    assert main(["tune", run, "--operating-point", "p", "--max-labels", "3", "--overwrite"]) == 0
    assert main(["predict", run, "--images", str(run_copy.labels.parent / "img"), "--out",
                 str(run_copy.run.parent / "x.csv"), "--operating-point", "nope"]) == 2
    assert "no operating point 'nope'; this run's: f2, p" in capsys.readouterr().err


def test_a_run_without_points_decides_as_before(shared_run):
    contents = RunDir.open(shared_run.run).contents()
    probs = np.random.default_rng(2).random((50, 3))
    assert contents.points == {}
    assert (contents.point().decide(probs) == (probs >= contents.tuner.thresholds_)).all()


def test_explain_decides_at_the_point_asked(run_copy, tmp_path):
    pytest.importorskip("captum")
    from fashionstyle.analysis.explain import Explainer

    run = run_copy.run
    assert main(["tune", str(run), "--operating-point", "one", "--beta", "1", "--max-labels", "1",
                 "--at-least-one"]) == 0
    image = sorted((run_copy.labels.parent / "img").glob("*.jpg"))[0]
    from fashionstyle.api import load
    from fashionstyle.data.images.files import open_rgb

    explainer = Explainer.from_run(run, operating_point="one")
    shown = explainer.explain(open_rgb(image, explainer.predictor.min_side), name=str(image))
    assert shown.prediction.labels == load(run, operating_point="one")(str(image)).labels
    assert len(shown.prediction.labels) == 1
    with pytest.raises(FashionStyleError, match="no operating point 'nope'"):
        Explainer.from_run(run, operating_point="nope")


def test_an_export_decides_at_the_point_it_names(run_copy, tmp_path, capsys):
    run = str(run_copy.run)
    assert main(["tune", run, "--operating-point", "one", "--beta", "1", "--max-labels", "1",
                 "--at-least-one"]) == 0
    images = sorted((run_copy.labels.parent / "img").glob("*.jpg"))[:5]
    from fashionstyle.api import load

    expected = [r.labels for r in load(run, operating_point="one")(images)]
    assert all(len(labels) == 1 for labels in expected)
    hub = tmp_path / "hub"
    assert main(["export", run, "--format", "hub", "--out", str(hub), "--operating-point", "one"]) == 0
    config = json.loads((hub / "config.json").read_text())
    assert config["default_operating_point"] == "one" and set(config["operating_points"]) == {"f2", "one"}
    assert [r.labels for r in load(str(hub))(images)] == expected
    assert [r.labels for r in load(str(hub), operating_point="f2")(images)] == [r.labels for r in load(run)(images)]
    from fashionstyle.inference.onnx_predictor import OnnxPredictor

    onnx = tmp_path / "onnx"
    assert main(["export", run, "--out", str(onnx), "--operating-point", "one"]) == 0
    alone = OnnxPredictor.from_export(onnx)
    assert alone.decision.name == "one"
    assert alone.decided_names(alone.predict_proba(images)) == expected
    capsys.readouterr()
    assert main(["export", run, "--format", "hub", "--out", str(tmp_path / "x"), "--operating-point", "nope"]) == 2
    assert "no operating point 'nope'; this run's: f2, one" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
