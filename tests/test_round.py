"""`fashionstyle round PREV --export FILE | --label-studio URL --project ID`: a round's labels merged into the
previous run's, a run trained from its weights, both compared on the same validation photos; Label Studio's
API read with one-line errors (a stub server here; tests/test_label_studio_docs.py drives a real one)."""
from __future__ import annotations

import http.server
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import LABELS, draw, label_studio_export
from fashionstyle.cli import main
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.labels.read import read_labels
from fashionstyle.labelstudio.client import Project
from fashionstyle.labelstudio.round import inputs_folder
from fashionstyle.labelstudio.tasks import labelling_config


@pytest.fixture
def round_export(shared_run, tmp_path):
    """A document root with six new photos and a link to the shared run's photos; an export labelling the six,
    relabelling one photo the run trained on, and naming one photo that is gone."""
    root = tmp_path / "srv"
    (root / "photos").mkdir(parents=True)
    os.symlink(shared_run.labels.parent / "img", root / "old")
    rng = np.random.default_rng(5)
    choices = {}
    for i in range(6):
        flags = (rng.random(3) < 0.5).astype(int)
        draw(rng, flags).save(root / "photos" / f"new{i}.jpg", quality=95)
        choices[f"photos/new{i}.jpg"] = [n for n, f in zip(LABELS, flags) if f]
    before = read_labels(shared_run.labels)
    k = before.splits.index("train")
    flipped = [n for n, v in zip(LABELS, before.targets[k]) if not v]
    choices[f"old/{Path(before.images[k]).name}"] = flipped
    choices["photos/deleted.jpg"] = ["Red"]
    return label_studio_export(tmp_path / "project-1.json", choices), root, before.images[k]


@pytest.mark.slow
def test_a_round_merges_trains_from_the_previous_weights_and_compares(shared_run, round_export, tmp_path, capsys):
    export, root, relabelled = round_export
    out = tmp_path / "round1"
    assert main(["round", str(shared_run.run), "--export", str(export), "--image-dir", str(root),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 of its 8 photos no longer exist: left out" in printed  # counted, not fatal
    assert "merged 2 label files: 38 photos, 1 in several files, 1 of them with different labels" in printed
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["init_from"] == str(shared_run.run.resolve())  # from the previous run's weights
    assert config["epochs"] == 1 and config["backbone"] == "test_resnet"  # its settings otherwise
    merged = read_labels(config["labels"])
    assert Path(config["labels"]) == inputs_folder(out) / "labels.csv" and len(merged) == 38
    before = read_labels(shared_run.labels)
    split_of = {os.path.realpath(p): s for p, s in zip(merged.images, merged.splits)}
    assert all(split_of[os.path.realpath(p)] == s for p, s in zip(before.images, before.splits))  # splits kept
    assert all(split_of[str((root / "photos" / f"new{i}.jpg").resolve())] == "train" for i in range(6))
    row = [os.path.realpath(p) for p in merged.images].index(os.path.realpath(relabelled))
    assert merged.targets[row].tolist() == [1 - v for v in before.targets[before.images.index(relabelled)]]
    n_val = before.splits.count("val")
    assert f"val ({n_val} photos, the same for both runs" in printed
    assert "F2 before" in printed and "F2 round" in printed
    assert "with 6 newly labelled photos:" in printed and "per 100 new labels" in printed


def test_a_round_refuses_an_export_of_other_labels_before_training(shared_run, tmp_path, capsys):
    export = label_studio_export(tmp_path / "other.json", {"a.jpg": ["Red"]})
    export.write_text(export.read_text().replace("Red;Striped;Dotted", "Red;Striped;Dotted;Floral"))
    (tmp_path / "a.jpg").write_bytes(b"")
    assert main(["round", str(shared_run.run), "--export", str(export), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Floral" in err
    assert not (tmp_path / "r").exists()


def test_label_studio_needs_its_project_and_document_root(shared_run, tmp_path, capsys):
    assert main(["round", str(shared_run.run), "--label-studio", "http://127.0.0.1:9", "--out",
                 str(tmp_path / "r")]) == 2
    assert "--label-studio needs --project ID and --image-dir" in capsys.readouterr().err


# -- the Label Studio API, one line per failure -------------------------------------------------------------------
class _Stub(http.server.BaseHTTPRequestHandler):
    """/api/projects/1 (config of `labels`) and its export, for the token "good"."""

    labels = list(LABELS)

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.headers.get("Authorization") != "Token good":
            return self._send(401, {"detail": "Authentication credentials were not provided."})
        if self.path == "/api/projects/1":
            return self._send(200, {"id": 1, "label_config": labelling_config(self.labels)})
        if self.path.startswith("/api/projects/1/export"):
            return self._send(200, [{"id": 1, "data": {}, "annotations": []}])
        return self._send(404, {"detail": "Not found."})

    def _send(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stub_label_studio():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_api_token_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(FashionStyleError, match="set LABEL_STUDIO_API_KEY"):
        Project("http://127.0.0.1:8080", 1)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "good")
    assert Project("http://127.0.0.1:8080", 1).token == "good"


def test_an_export_is_pulled_with_the_token(stub_label_studio, tmp_path):
    project = Project(stub_label_studio, 1, token="good")
    project.check_labels(list(LABELS))
    assert json.loads(project.download_export(tmp_path / "export.json").read_text())[0]["id"] == 1


@pytest.mark.parametrize("token, project, labels, message", [
    ("bad", 1, LABELS, "the token was refused (HTTP 401); set LABEL_STUDIO_API_KEY"),
    ("good", 7, LABELS, "no project 7 (HTTP 404)"),
    ("good", 1, (*LABELS, "Floral"), "project 1: the project's choice 'Floral' is not a label of this run"),
    ("good", 1, LABELS[:2], "project 1: the project has no choice for the run's label 'Dotted'"),
])
def test_label_studio_failures_are_one_line(stub_label_studio, monkeypatch, token, project, labels, message):
    monkeypatch.setattr(_Stub, "labels", list(labels))
    with pytest.raises(FashionStyleError) as err:
        Project(stub_label_studio, project, token=token).check_labels(list(LABELS))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unreachable_label_studio_is_one_line(tmp_path):
    with pytest.raises(FashionStyleError, match=r"Label Studio not reachable .*; is it running there"):
        Project("http://127.0.0.1:9", 1, token="good").check_labels(list(LABELS))
