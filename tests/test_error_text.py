"""One meaning of `error` (issue 44): why a photo got no prediction (not found, not an image, truncated) is the
same text in prediction files (the `error` column and OUT.skipped.txt), `fashionstyle.load()`, POST /predict
and the MLflow pyfunc model: images.why_unreadable's words, without the file's name (`image` names it)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from PIL import Image

from conftest import LABELS, TinyRun
from fashionstyle.data.images.files import why_unreadable
from fashionstyle.inference.prediction_files import read_predictions

EXPECTED = {
    "missing.jpg": "image not found",
    "notes.jpg": "not a readable image (unknown or unsupported format)",
    "cut.jpg": "not a readable image (",  # Pillow's words for the truncated file follow
}


def bad_photos(folder: Path) -> list[Path]:
    """A missing file, a text file named .jpg and a truncated JPEG, in `folder`."""
    folder.mkdir()
    (folder / "notes.jpg").write_text("not a photo")
    jpeg = io.BytesIO()
    Image.new("RGB", (200, 150), (200, 30, 60)).save(jpeg, "JPEG")
    (folder / "cut.jpg").write_bytes(jpeg.getvalue()[:600])  # its header reads, its pixels do not
    return [folder / name for name in EXPECTED]


def test_why_unreadable_names_the_reason_alone(tmp_path: Path) -> None:
    for photo in bad_photos(tmp_path / "bad"):
        reason = why_unreadable(photo)
        assert reason.startswith(EXPECTED[photo.name]) and photo.name not in reason and "\n" not in reason
    assert why_unreadable((tmp_path / "bad" / "cut.jpg").read_bytes()) == why_unreadable(tmp_path / "bad" / "cut.jpg")


def served_errors(run: Path, photos: list[Path]) -> dict[str, str]:
    """POST /predict's error of each photo that exists (an upload cannot be missing), by file name."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from fashionstyle.serving.app import create_app

    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos if p.exists()]
    with TestClient(create_app(run)) as client:
        body = client.post("/predict", files=files).json()
    return {r["image"]: r["error"] for r in body["predictions"]}


def mlflow_errors(run: Path, photos: list[Path], folder: Path) -> dict[str, str]:
    """The pyfunc model's error column, saved and loaded as MLflow does, by file name."""
    mlflow = pytest.importorskip("mlflow")
    import pandas

    from fashionstyle.inference.mlflow_model import INPUT_EXAMPLE, RunModel, signature

    mlflow.pyfunc.save_model(str(folder), python_model=RunModel(), artifacts={"run": str(run)},
                             signature=signature(list(LABELS)), input_example=pandas.DataFrame(INPUT_EXAMPLE))
    table = mlflow.pyfunc.load_model(str(folder)).predict(pandas.DataFrame({"image": [str(p) for p in photos]}))
    return {Path(image).name: error for image, error in zip(table["image"], table["error"])}


@pytest.mark.slow
def test_the_same_bad_photo_gives_the_same_error_at_every_door(shared_run: TinyRun, tmp_path: Path) -> None:
    import fashionstyle
    from fashionstyle.cli import main

    photos = bad_photos(tmp_path / "bad")
    out, listed = tmp_path / "tags.csv", tmp_path / "photos.txt"
    listed.write_text("".join(f"{p}\n" for p in [shared_run.images[0], *photos]))
    assert main(["predict", str(shared_run.run), "--images", str(listed), "--out", str(out), "--quiet"]) == 0
    doors = {"file": {Path(r.image).name: r.error for r in read_predictions(out).predictions},
             "skipped.txt": {Path(row[1]).name: row[2] for row in csv.reader(Path(f"{out}.skipped.txt").open())},
             "load()": {Path(r.image).name: r.error for r in fashionstyle.load(shared_run.run)(photos)},
             "HTTP": served_errors(shared_run.run, photos),
             "MLflow": mlflow_errors(shared_run.run, photos, tmp_path / "mlflow-model")}
    assert doors["file"].pop(shared_run.images[0].name) is None  # the readable photo: a record without error
    reasons = {photo.name: why_unreadable(photo) for photo in photos}
    for door, errors in doors.items():
        expected = {n: r for n, r in reasons.items() if n in errors or door != "HTTP"}
        assert errors == expected, door
    for name, reason in reasons.items():
        assert reason.startswith(EXPECTED[name])
