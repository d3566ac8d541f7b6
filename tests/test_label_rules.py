"""labels.yaml beside a label file: exclusive groups and operating points that `train` tunes at its end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import LABELS, TINY_TRAIN, make_image_set
from fashionstyle.cli import main
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.label_rules import read_label_rules
from fashionstyle.core.run import RunDir


def rules_of(tmp_path: Path, text: str):
    (tmp_path / "labels.yaml").write_text(text)
    return read_label_rules([tmp_path / "labels.csv"], list(LABELS))


def test_groups_apply_to_every_point_unless_it_gives_its_own(tmp_path):
    rules = rules_of(tmp_path, "exclusive: [[Red, Striped]]\noperating_points:\n"
                               "  store: {min_precision: 0.8, max_labels: 1}\n  wide: {beta: 1, exclusive: []}\n"
                               "  plain:\n")
    store, wide, plain = rules.points
    assert (store.objective, store.target, store.max_labels, store.exclusive) == ("min-precision", 0.8, 1,
                                                                                  (("Red", "Striped"),))
    assert (wide.objective, wide.target, wide.exclusive) == ("fbeta", 1.0, ())
    assert (plain.objective, plain.target) == ("fbeta", 2.0)
    rng = np.random.default_rng(0)
    targets = (rng.random((80, 3)) < 0.4).astype(np.uint8)
    probs = np.clip(targets * 0.5 + rng.random((80, 3)) * 0.5, 0, 1)
    fitted = rules.fit(probs, targets)
    assert [p.name for p in fitted] == ["store", "wide", "plain"]
    assert (fitted[0].decide(probs).sum(axis=1) <= 1).all()
    assert read_label_rules([tmp_path / "elsewhere" / "labels.csv"], list(LABELS)) is None


@pytest.mark.parametrize("text, said", [
    ("colours: []", "unknown key 'colours'; valid: exclusive, operating_points"),
    ("exclusive: [[Red, Blue]]", "names 'Blue', not a label of the run; valid: Red, Striped, Dotted"),
    ("exclusive: [[Red, Striped], [Red, Dotted]]", "label 'Red' is in two exclusive groups"),
    ("exclusive: Red", "exclusive must be a list of label lists"),
    ("operating_points: {s: {min_precision: 1.5}}", "min-precision 1.5 must be in (0, 1]"),
    ("operating_points: {s: {min_precision: 0.9, min_recall: 0.5}}", "give one of beta, min_precision, min_recall"),
    ("operating_points: {s: {max_labels: 0}}", "max labels 0 must be a whole number of at least 1"),
    ("operating_points: {s: {top: 3}}", "operating point 's': unknown key 'top'"),
    ("operating_points: {s: {at_least_one: yes please}}", "at_least_one must be true or false"),
    ("operating_points: [s]", "operating_points must map names to settings"),
])
def test_a_bad_labels_yaml_is_one_line_naming_the_file(tmp_path, text, said):
    with pytest.raises(FashionStyleError) as caught:
        rules_of(tmp_path, text)
    message = str(caught.value)
    assert said in message and str(tmp_path / "labels.yaml") in message and "\n" not in message


@pytest.mark.slow
def test_train_tunes_the_points_of_labels_yaml_and_refuses_a_bad_one_before_training(tmp_path, capsys):
    labels = make_image_set(tmp_path / "data", n=32)
    (labels.parent / "labels.yaml").write_text("exclusive: [[Red, Striped]]\n"
                                               "operating_points:\n  store: {beta: 1, max_labels: 1}\n")
    out = tmp_path / "run"
    assert main(["train", "--labels", str(labels), "--out", str(out), *TINY_TRAIN]) == 0
    assert "operating point store: F1; at most 1 label, one of Red/Striped" in capsys.readouterr().out
    contents = RunDir.open(out).contents()
    assert contents.point_names() == ["f2", "store"] and contents.point("store").max_labels == 1
    assert "## Operating points" in (out / "MODEL_CARD.md").read_text()
    assert json.loads((out / "operating_points.json").read_text())["points"][0]["exclusive"] == [["Red", "Striped"]]
    (labels.parent / "labels.yaml").write_text("exclusive: [[Red, Blue]]\n")
    assert main(["train", "--labels", str(labels), "--out", str(tmp_path / "bad"), *TINY_TRAIN]) == 2
    assert "labels.yaml: exclusive group 1 names 'Blue'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
