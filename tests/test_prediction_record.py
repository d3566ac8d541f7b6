"""One prediction record on every surface: `predict --out` CSV / JSON / Parquet, `fashionstyle.load()` and
POST /predict give the same image the same record (keys, label order, scores within 1e-6)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import LABELS, TinyRun
from fashionstyle.core.prediction import FIELDS, Prediction, make_prediction, ranked_names
from fashionstyle.inference.prediction_files import read_predictions

pq = pytest.importorskip("pyarrow.parquet")


def test_labels_are_the_decided_names_most_probable_first_ties_in_label_order() -> None:
    probs = np.array([0.4, 0.9, 0.4, 0.1], np.float32)
    decided = np.array([1, 1, 1, 0])
    assert ranked_names(probs, decided, ["a", "b", "c", "d"]) == ["b", "a", "c"]
    record = make_prediction("x.jpg", probs, decided, ["a", "b", "c", "d"])
    assert list(record.as_dict()) == list(FIELDS) and list(record.scores) == ["a", "b", "c", "d"]
    assert Prediction.from_dict(json.loads(json.dumps(record.as_dict()))) == record
    unreadable = make_prediction("y.jpg", np.full(4, np.nan, np.float32), np.zeros(4), ["a", "b", "c", "d"])
    assert unreadable == Prediction("y.jpg", [], {}, "unreadable image")


def test_a_label_named_like_a_column_is_refused_before_writing(tmp_path: Path) -> None:
    from fashionstyle.core.errors import FashionStyleError
    from fashionstyle.inference.outputs import write_predictions

    probs = np.zeros((1, 2), np.float32)
    with pytest.raises(FashionStyleError, match="label 'image' has the name of a prediction column"):
        write_predictions(tmp_path / "p.csv", "csv", ["a"], probs, probs, ["Red", "image"])
    assert not (tmp_path / "p.csv").exists()


def test_an_older_prediction_file_is_refused_in_one_line(tmp_path: Path) -> None:
    from fashionstyle.core.errors import FashionStyleError

    old = tmp_path / "old.csv"
    old.write_text("id,Red,labels\na,0.9,Red\n")
    with pytest.raises(FashionStyleError, match="not a fashionstyle.prediction/2 prediction file .*predict it again"):
        read_predictions(old)


def _served(run: Path, image: Path) -> tuple[dict, dict]:
    """POST /predict's answer for one upload named as the file: (the whole body, its one record)."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from fashionstyle.serving.app import create_app

    with TestClient(create_app(run)) as client, image.open("rb") as f:
        response = client.post("/predict", files=[("files", (image.name, f, "image/jpeg"))])
    assert response.status_code == 200, response.text
    body = response.json()
    return body, body["predictions"][0]


@pytest.mark.slow
def test_one_image_gives_the_same_record_from_files_the_api_and_the_service(shared_run: TinyRun, tmp_path: Path,
                                                                          monkeypatch) -> None:
    import fashionstyle
    from fashionstyle.cli import main

    run, _, images = shared_run
    monkeypatch.chdir(images[0].parent)  # the image named as a user types it, and as an upload names it
    name = images[0].name
    records: dict[str, Prediction] = {}
    for fmt in ("csv", "json", "parquet"):
        out = tmp_path / f"p.{fmt}"
        assert main(["predict", str(run), "--images", name, "--out", str(out), "--quiet"]) == 0
        [records[fmt]] = read_predictions(out).predictions
    raw = json.loads((tmp_path / "p.json").read_text())
    tagger = fashionstyle.load(run)
    records["load"] = tagger(name)
    body, served = _served(run, images[0])
    records["service"] = Prediction.from_dict(served)
    assert list(raw["predictions"][0]) == list(served) == list(FIELDS)  # the same keys, in the same order
    assert raw["thresholds"] == pytest.approx(tagger.thresholds)
    assert body["thresholds"] == pytest.approx(tagger.thresholds)
    assert "thresholds" not in served and "thresholds" not in raw["predictions"][0]  # once per file or answer
    reference = records["load"]
    assert reference.image == name and reference.error is None and list(reference.scores) == list(LABELS)
    for surface, record in records.items():
        assert record.image == name, surface
        assert record.labels == reference.labels, surface
        assert list(record.scores) == list(LABELS), surface
        np.testing.assert_allclose(list(record.scores.values()), list(reference.scores.values()), atol=1e-6,
                                   err_msg=surface)
        assert record.error is None, surface


@pytest.mark.slow
def test_explain_gives_the_record_the_api_gives(shared_run: TinyRun) -> None:
    pytest.importorskip("captum")
    import fashionstyle
    from fashionstyle.analysis.explain import Explainer
    from fashionstyle.data.images.files import open_rgb

    run, _, images = shared_run
    explainer = Explainer.from_run(run)
    shown = explainer.explain(open_rgb(images[1], explainer.predictor.min_side), name=str(images[1]))
    expected = fashionstyle.load(run)(str(images[1]))
    assert shown.prediction.image == expected.image and shown.prediction.labels == expected.labels
    assert shown.prediction.scores == pytest.approx(expected.scores, abs=1e-6)
