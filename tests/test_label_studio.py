"""Label Studio both ways: tasks with scored pre-annotations, its exports read as label files, the service as
its ML backend. The fast tests use exports recorded from Label Studio 1.23.2; the slow one starts a real
server (its venv made by .ci/label_studio_venv.sh) and goes through a whole round with label-studio-sdk."""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conftest import LABELS, draw, fingerprint
from label_studio_docs import free_port, running_label_studio, wait_up
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.read import read_labels
from fashionstyle.labelstudio.tasks import config_path, labelling_config, make_tasks

LS_VENV = Path(os.environ.get("FASHIONSTYLE_LABEL_STUDIO_VENV", "/tmp/ls-venv"))
DRIVER = Path(__file__).with_name("label_studio_driver.py")
LABEL_SET = ";".join(LABELS)


def _annotation(task: int, choices: list[str] | None, cancelled: bool = False) -> dict:
    """One annotation as Label Studio 1.23.2 exports it (the fields this reader does not use trimmed)."""
    result = [] if not choices else [{"from_name": "style", "to_name": "image", "type": "choices",
                                      "value": {"choices": choices}}]
    return {"id": task, "completed_by": 1, "result": result, "was_cancelled": cancelled, "ground_truth": False,
            "created_at": f"2026-12-07T00:15:3{task}.598059Z", "updated_at": f"2026-12-07T00:15:3{task}.598100Z",
            "lead_time": None, "task": task, "project": 1}


def _json_export(folder: Path) -> Path:
    tasks = [{"id": k, "annotations": [_annotation(k, choices, cancelled)], "predictions": [k],
              "data": {"image": f"/data/local-files/?d=img/{k:03d}.jpg", "fashionstyle_labels": LABEL_SET},
              "meta": {}, "total_annotations": 1, "cancelled_annotations": int(cancelled), "project": 1}
             for k, choices, cancelled in ((1, ["Red", "Dotted"], False), (2, None, True), (3, None, False),
                                           (4, ["Striped"], False))]
    path = folder / "project-1.json"
    path.write_text(json.dumps(tasks))
    return path


def _min_export(folder: Path) -> Path:
    """JSON-min, as 1.23.2 writes it: a cancelled task left out, one choice as a string, several as a dict."""
    rows = [{"image": "/data/local-files/?d=img/001.jpg", "fashionstyle_labels": LABEL_SET, "id": 1,
             "style": {"choices": ["Red", "Dotted"]}, "annotator": 1, "annotation_id": 1},
            {"image": "/data/local-files/?d=img/003.jpg", "fashionstyle_labels": LABEL_SET, "id": 3,
             "annotator": 1, "annotation_id": 3},
            {"image": "/data/local-files/?d=img/004.jpg", "fashionstyle_labels": LABEL_SET, "id": 4,
             "style": "Striped", "annotator": 1, "annotation_id": 4}]
    path = folder / "project-1-min.json"
    path.write_text(json.dumps(rows, indent=2))
    return path


def _csv_export(folder: Path) -> Path:
    path = folder / "project-1.csv"
    path.write_text(
        '"annotation_id","annotator","created_at","fashionstyle_labels","id","image","lead_time","style","updated_at"\n'
        f'1,"1","2026-12-07T00:15:30Z","{LABEL_SET}",1,"/data/local-files/?d=img/001.jpg","",'
        '"{""choices"":[""Red"",""Dotted""]}","2026-12-07T00:15:30Z"\n'
        f'3,"1","2026-12-07T00:15:33Z","{LABEL_SET}",3,"/data/local-files/?d=img/003.jpg","","","2026-12-07T00:15:33Z"\n'
        f'4,"1","2026-12-07T00:15:34Z","{LABEL_SET}",4,"/data/local-files/?d=img/004.jpg","","Striped",'
        '"2026-12-07T00:15:34Z"\n')
    return path


def test_the_labelling_config_is_one_multiple_choices_of_the_runs_labels():
    root = ET.fromstring(labelling_config(["Red", 'A "quoted" & <odd> name']))
    choices = root.find("Choices")
    assert root.find("Image").get("value") == "$image" and choices.get("choice") == "multiple"
    assert [c.get("value") for c in choices] == ["Red", 'A "quoted" & <odd> name']


def test_tasks_carry_suggests_order_and_the_models_certainty_and_images_are_local_files_urls(tmp_path):
    paths = [str(tmp_path / "photos" / f"{n}.jpg") for n in ("b", "a", "c")]
    probs = np.array([[0.9, 0.1, 0.6], [0.2, 0.8, 0.1], [np.nan, np.nan, np.nan]])
    tasks = make_tasks(["b", "a", "c"], paths, probs, OperatingPoint("f2", np.full(3, 0.5)), list(LABELS), tmp_path, "m")
    assert [t["data"]["fashionstyle_priority"] for t in tasks] == [1, 2, 3]  # suggest's order, its own column
    # one meaning of the score, as the ML backend gives it: 1 - the mean distance-to-threshold uncertainty
    # (b: 0.9, 0.1, 0.6 about 0.5 -> uncertainties 0.2, 0.2, 0.8 -> 0.6); an unreadable photo 0
    assert [t["predictions"][0]["score"] for t in tasks] == [0.6, 0.666667, 0.0]
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=photos/b.jpg"
    assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"] == ["Red", "Dotted"]  # most probable first
    assert tasks[2]["predictions"][0]["result"] == []  # an unreadable photo: no guess
    with pytest.raises(FashionStyleError, match="not under the Label Studio document root"):
        make_tasks(["b"], ["/elsewhere/b.jpg"], probs[:1], OperatingPoint("f2", np.full(3, 0.5)), list(LABELS), tmp_path,
                   "m")
    assert config_path(tmp_path / "round1.json").name == "round1.label_config.xml"


def test_a_young_models_f2_thresholds_flood_but_its_pre_annotations_tick_at_most_three(tmp_path):
    from fashionstyle.core.run import RunDir
    from fashionstyle.core.thresholds import ThresholdTuner

    names = [f"style{k}" for k in range(12)]
    rng = np.random.default_rng(0)
    targets = (rng.random((300, 12)) < 0.15).astype(np.uint8)
    probs = np.clip(0.25 * targets + rng.random((300, 12)) * 0.6, 0, 1)  # a weak model: classes overlap
    run = RunDir.create(tmp_path / "run")
    run.write_label_names(names)
    run.write_val_probs([f"v{i}" for i in range(300)], probs, targets)
    tuner = ThresholdTuner(beta=2.0)
    tuner.thresholds_, tuner.best_fbeta_, tuner.tuned_ = np.full(12, 0.05), np.zeros(12), np.ones(12, bool)
    run.write_thresholds(tuner)
    contents = run.contents()
    assert contents.point().decide(probs).sum(axis=1).mean() > 10  # F2 at 0.05 ticks nearly every box
    point = contents.labelling_point()
    tasks = make_tasks([f"p{i}" for i in range(300)], [str(tmp_path / f"p{i}.jpg") for i in range(300)], probs,
                       point, names, tmp_path, "m")
    ticked = [len(t["predictions"][0]["result"][0]["value"]["choices"]) if t["predictions"][0]["result"] else 0
              for t in tasks]
    assert point.name == "labelling" and max(ticked) <= 3
    from fashionstyle.core.operating_points import fit_point

    run.write_operating_point(fit_point("labelling", probs, targets, names, max_labels=1))  # the run's own wins
    assert run.contents().labelling_point().max_labels == 1


@pytest.mark.parametrize("export", [_json_export, _min_export, _csv_export])
def test_an_export_reads_as_a_label_file_without_its_skipped_tasks(tmp_path, export, capsys):
    table = read_labels(export(tmp_path), images=tmp_path / "root")
    assert table.label_names == list(LABELS)
    assert [p.relative_to(tmp_path / "root").as_posix() for p in table.images] == ["img/001.jpg", "img/003.jpg",
                                                                                      "img/004.jpg"]
    assert table.targets.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    if export is _json_export:  # the only format that lists the cancelled task
        assert "1 skipped or cancelled task(s) left out" in capsys.readouterr().err


def _refused(tmp_path: Path, capsys, tasks: list[dict], match: str) -> None:
    """`train` on this export is refused in one line, and leaves nothing behind."""
    from fashionstyle.cli import main

    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    before = fingerprint(tmp_path)
    capsys.readouterr()
    assert main(["train", "--labels", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err
    assert fingerprint(tmp_path) == before


def test_bad_exports_are_refused_in_one_line_naming_the_task(tmp_path, capsys):
    good = {"image": "/data/local-files/?d=img/001.jpg", "fashionstyle_labels": LABEL_SET}
    boxes = [{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": {"x": 1}}]
    _refused(tmp_path, capsys, [{"id": 7, "data": good, "annotations": [{"id": 1, "result": boxes}]}],
             r"task 7: a result of 'label' \(rectanglelabels\).*another project's labels")
    _refused(tmp_path, capsys, [{"id": 8, "data": {"image": "/data/local-files/?d=x.jpg"},
                         "annotations": [{"id": 1, "result": []}]}], r"task 8: no fashionstyle_labels")
    _refused(tmp_path, capsys, [{"id": 9, "data": {"fashionstyle_labels": LABEL_SET}, "annotations": []}],
             r"task 9: has no image")
    bad = [{"from_name": "style", "to_name": "image", "type": "choices", "value": {"choices": ["Rad"]}}]
    _refused(tmp_path, capsys, [{"id": 10, "data": good, "annotations": [{"id": 1, "result": bad}]}],
             r"task 10: unknown label 'Rad' \(did you mean Red\?\)")


def _tiny_backend(run: Path, root: Path):
    from fashionstyle.inference.runtimes import load_predictor
    from fashionstyle.serving.label_studio import backend_app

    return backend_app(load_predictor(run), "fashionstyle:run", root)


def test_the_ml_backend_answers_health_setup_and_predict(shared_run):
    from fastapi.testclient import TestClient

    root = shared_run.labels.parent
    client = TestClient(_tiny_backend(shared_run.run, root))
    assert client.get("/health").json()["status"] == "UP"
    config = labelling_config(LABELS)
    assert client.post("/setup", json={"project": "1.1", "schema": config}).json() == {"model_version": "fashionstyle:run"}
    foreign = config.replace('value="Dotted"', 'value="Cat"')
    refused = client.post("/setup", json={"project": "1.1", "schema": foreign})
    assert refused.status_code == 400 and "choice 'Cat' is not a label of this run" in refused.json()["detail"]
    tasks = [{"id": k, "data": {"image": f"/data/local-files/?d=img/{k:03d}.jpg"}} for k in (1, 2)]
    answer = client.post("/predict", json={"tasks": tasks, "project": "1.1", "label_config": config}).json()
    assert len(answer["results"]) == 2
    for result in answer["results"]:
        assert result["model_version"] == "fashionstyle:run" and 0.0 <= result["score"] <= 1.0
        assert set(result["result"][0]["value"]["choices"]) <= set(LABELS) if result["result"] else True
    no_image = client.post("/predict", json={"tasks": [{"id": 5, "data": {}}]})
    assert no_image.status_code == 400 and no_image.json()["detail"].startswith("task 5: has no image")


def test_the_backend_mounts_on_the_service_app(shared_run):
    from fastapi.testclient import TestClient

    from fashionstyle.serving.label_studio import mount_label_studio
    from fashionstyle.serving.app import create_app

    app = mount_label_studio(create_app(shared_run.run), shared_run.labels.parent)
    client = TestClient(app)
    assert client.get("/label-studio/health").json()["status"] == "UP"
    assert client.get("/health").json()["status"] == "ok"  # the service's own routes stay


# --- against a real Label Studio ------------------------------------------------------------------------------


@pytest.fixture
def label_studio(tmp_path):
    """A Label Studio on 127.0.0.1, started as docs/label-less.md starts it (SQLite in tmp_path, local files
    under tmp_path/root): (url, token, root)."""
    root = tmp_path / "root"
    root.mkdir()
    with running_label_studio(LS_VENV, tmp_path, root) as (url, token):
        yield url, token, root


def _serve_in_thread(app) -> tuple[str, object]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    wait_up(f"http://127.0.0.1:{port}/health", 60)
    return f"http://127.0.0.1:{port}", server


@pytest.mark.slow
def test_a_whole_round_with_a_real_label_studio(shared_run, label_studio, tmp_path):
    from fashionstyle.cli import suggest as command
    from fashionstyle.serving.label_studio import backend_app
    from fashionstyle.inference.runtimes import load_predictor
    import argparse

    url, token, root = label_studio
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for i in range(8):
        draw(rng, (rng.random(3) < 0.4).astype(int)).save(photos / f"p{i}.jpg", quality=95)
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    tasks = tmp_path / "round1.json"
    assert command.run(parser.parse_args(["suggest", str(shared_run.run), "--images", str(photos), "--n", "5",
                                          "--out", str(tmp_path / "round1.csv"), "--tasks", str(tasks),
                                          "--label-studio-root", str(root), "--quiet"])) == 0
    chosen = [json.loads(tasks.read_text())[k]["data"]["image"] for k in range(5)]
    backend_url, backend = _serve_in_thread(backend_app(load_predictor(shared_run.run), "fashionstyle:run", root,
                                                        auth="ml:backend-secret"))
    out = tmp_path / "out"
    out.mkdir()
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps({"url": url, "token": token, "tasks": str(tasks), "config": str(config_path(tasks)),
                                 "storage": str(photos), "backend": backend_url, "backend_auth": "ml:backend-secret",
                                 "out": str(out)}))
    try:
        driven = subprocess.run([str(LS_VENV / "bin" / "python"), str(DRIVER), str(steps)], capture_output=True,
                                text=True, timeout=600)
    finally:
        backend.should_exit = True
    assert driven.returncode == 0, driven.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == chosen  # imported in suggest's order, each with the score the file gave it
    written = [t["predictions"][0]["score"] for t in json.loads(tasks.read_text())]
    assert summary["imported_scores"] == pytest.approx(written)
    assert len(summary["backend_predictions"]) == 5  # the connected backend pre-annotated every task
    for prediction in summary["backend_predictions"].values():
        assert prediction["model_version"] == "fashionstyle:run"
        assert all(set(r["value"]["choices"]) <= set(LABELS) for r in prediction["result"])
    first = chosen[0].split("?d=", 1)[1]
    for name in ("export.json", "export.min.json", "export.csv"):
        table = read_labels(out / name, images=root)
        assert table.label_names == list(LABELS) and len(table) == 2  # the skipped task left out
        assert table.images[0] == root / first and table.targets[0].tolist() == [1, 1, 0]
        assert table.targets[1].tolist() == [0, 0, 0]


# -- issue 40: fields of another type, times read as times, a label set checked ------------------------
def _choices(names: list, **fields) -> dict:
    """An annotation ticking `names`, with the fields given (id, updated_at, ...)."""
    return {"result": [{"from_name": "style", "to_name": "image", "type": "choices", "value": {"choices": names}}],
            **fields}


def test_fields_of_another_type_are_refused_in_one_line_naming_the_task(tmp_path, capsys):
    good = {"image": "/data/local-files/?d=img/001.jpg", "fashionstyle_labels": LABEL_SET}
    result = _choices(["Red"])["result"][0]
    for task, match in [
        ({"id": 11, "data": good, "annotations": {"id": 1, "result": []}}, r"task 11: its annotations must be a list"),
        ({"id": 12, "data": good, "annotations": [{"id": 1, "result": "Red"}]},
         r"task 12: annotation 1: its result must be a list of results, got 'Red'"),
        ({"id": 13, "data": [good], "annotations": []}, r"task 13: its data must be an object"),
        ({"id": 14, "data": good, "annotations": [{"id": 1, "result": [{**result, "value": None}]}]},
         r"task 14: a 'style' result's value must be \{\"choices\": \[...\]\}, got None"),
        ({"id": 15, "data": good, "annotations": [_choices([3], id=1)]},
         r"task 15: its 'style' value \[3\] is not a list of choices"),
        ({"id": 16, "data": good, "annotations": [_choices(["Red"], id=1, updated_at="yesterday")]},
         r"task 16: annotation 1: 'yesterday' is not a time"),
        ({"id": 17, "data": {**good, "fashionstyle_labels": ["Red"]}, "annotations": []},
         r"task 17: its fashionstyle_labels must be the label names joined by ';'"),
        ({"id": 18, "data": {**good, "fashionstyle_labels": "Red;error"}, "annotations": []},
         r"export.json: a label may not be called 'error'"),
    ]:
        _refused(tmp_path, capsys, [task], match)


def test_the_newest_annotation_is_found_by_time_then_by_id_of_any_type(tmp_path):
    from fashionstyle.data.labels.label_studio import parse_time

    assert parse_time("2026-12-07T10:00:00.123456Z") > parse_time("2026-12-07T10:00:00Z")
    assert parse_time("2026-12-07T10:00:00.1234567891Z") == parse_time("2026-12-07T10:00:00.123456+00:00")
    assert parse_time("2026-12-07 11:00:00.5+0100") == parse_time("2026-12-07T10:00:00.500Z")
    assert parse_time("2026-12-07T10:00") == parse_time("2026-12-07T10:00:00Z")  # no zone: UTC
    assert parse_time("2026-13-07T10:00:00Z") is None and parse_time("soon") is None
    data = {"image": "/data/local-files/?d=img/001.jpg", "fashionstyle_labels": LABEL_SET}
    at = "2026-12-07T10:00:00Z"
    for annotations, newest in [
        ([_choices(["Striped"], id=2, updated_at="2026-12-07T10:00:00.123456Z"),
          _choices(["Red"], id=1, updated_at=at)], [0, 1, 0]),  # as text, "...00Z" sorted after "...00.1..."
        ([_choices(["Red"], id="draft", updated_at=at), _choices(["Dotted"], id=3, updated_at=at),
          _choices(["Striped"], id="10", updated_at=at)], [0, 1, 0]),  # equal times: the largest number
        ([_choices(["Red"], id=1, created_at=at), _choices(["Dotted"], id=2)], [1, 0, 0]),  # no time: oldest
    ]:
        path = tmp_path / "export.json"
        path.write_text(json.dumps([{"id": 1, "data": data, "annotations": annotations}]))
        assert read_labels(path).targets.tolist() == [newest]


def test_a_csv_export_that_is_not_utf8_is_one_line(tmp_path, capsys):
    from fashionstyle.cli import main

    path = tmp_path / "export.csv"
    path.write_bytes(f'annotation_id,fashionstyle_labels,id,image,style\n1,"{LABEL_SET}",1,'
                     '"/data/local-files/?d=caf\xe9.jpg",Red\n'.encode("latin-1"))
    before = fingerprint(tmp_path)
    assert main(["train", "--labels", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}: not UTF-8 text" in err, err
    assert fingerprint(tmp_path) == before
