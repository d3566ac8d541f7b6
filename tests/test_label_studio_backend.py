"""The Label Studio ML backend as a door: credentials, where photos may come from, the token's one host, the
service's limits per request, one bad task one task's error, malformed bodies refused in one line."""
from __future__ import annotations

import base64
import http.server
import io
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import LABELS, draw
from fashionstyle.cli import main
from fashionstyle.labelstudio.tasks import labelling_config
from fashionstyle.serving import task_images
from fashionstyle.serving.label_studio import backend_app
from fashionstyle.serving.limits import ServiceLimits

AUTH = ("ml", "s3cret")
GOOD = {"Authorization": "Basic " + base64.b64encode(b"ml:s3cret").decode()}


def _photo_bytes(seed: int = 0, size: int = 32) -> bytes:
    buffer = io.BytesIO()
    draw(np.random.default_rng(seed), np.array([1, 0, 1]), size).save(buffer, format="JPEG")
    return buffer.getvalue()


class _Capture(http.server.BaseHTTPRequestHandler):
    """A host that records each request's path and Authorization header; /moved redirects to `target`."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/moved") and self.server.target:
            self.send_response(302)
            self.send_header("Location", self.server.target)
            self.end_headers()
            return
        body = _photo_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hosts():
    """Two hosts on 127.0.0.1: Label Studio and an attacker's; each records what it was asked."""
    servers = []
    for _ in range(2):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
        server.seen, server.target = [], None
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield [(f"http://127.0.0.1:{s.server_address[1]}", s) for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def folders(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "img").mkdir(parents=True)
    outside.mkdir()
    for folder in (root / "img", outside):
        (folder / "a.jpg").write_bytes(_photo_bytes())
    (outside / "passwd").write_text("root:x:0:0\n")
    (root / "link.jpg").symlink_to(outside / "a.jpg")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    return root, outside


def _client(run: Path, root: Path, **options) -> TestClient:
    from fashionstyle.inference.runtimes import load_predictor

    return TestClient(backend_app(load_predictor(run), "fashionstyle:run", root, auth=AUTH, **options))


def _tasks(*urls: str) -> dict:
    return {"tasks": [{"id": k + 1, "data": {"image": url}} for k, url in enumerate(urls)]}


def test_setup_and_predict_need_the_credentials(shared_run, folders):
    client = _client(shared_run.run, folders[0])
    body = {"schema": labelling_config(LABELS)}
    assert client.get("/health").status_code == 200  # Label Studio's check before it connects
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"ml:wrong").decode()},
                    {"Authorization": "Bearer s3cret"}, {"Authorization": "Basic !!notbase64"}):
        for route, payload in (("/setup", body), ("/predict", _tasks("/data/local-files/?d=img/a.jpg"))):
            answer = client.post(route, json=payload, headers=headers)
            assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic")
    assert client.post("/setup", json=body, headers=GOOD).status_code == 200


def test_the_token_goes_only_to_the_label_studio_host(shared_run, folders, hosts):
    (studio, studio_server), (attacker, attacker_server) = hosts
    studio_server.target = f"{attacker}/stolen.jpg"
    client = _client(shared_run.run, folders[0])
    setup = {"schema": labelling_config(LABELS), "hostname": studio, "access_token": "TOKEN"}
    assert client.post("/setup", json=setup, headers=GOOD).status_code == 200
    port = attacker.rsplit(":", 1)[1]
    urls = ("/data/upload/1/a.jpg", f"{attacker}/evil.jpg", f"//127.0.0.1:{port}/evil.jpg",
            f"http://localhost:{port}/evil.jpg", f"{studio}/moved", f"{studio}/data/upload/2/b.jpg")
    answer = client.post("/predict", json=_tasks(*urls), headers=GOOD)
    results = answer.json()["results"]
    assert answer.status_code == 200 and len(results) == 6
    assert [bool(r.get("error")) for r in results] == [False, True, True, True, True, False]
    assert "other hosts are never fetched" in results[1]["error"] and "not followed" in results[4]["error"]
    assert attacker_server.seen == []  # never asked, neither directly nor through the redirect
    assert studio_server.seen == [("/data/upload/1/a.jpg", "Token TOKEN"), ("/moved", "Token TOKEN"),
                                  ("/data/upload/2/b.jpg", "Token TOKEN")]


def test_an_operators_label_studio_url_wins_over_what_setup_says(shared_run, folders, hosts):
    (studio, studio_server), (attacker, attacker_server) = hosts
    client = _client(shared_run.run, folders[0], label_studio_url=studio)
    setup = {"schema": labelling_config(LABELS), "hostname": attacker, "access_token": "TOKEN"}
    assert client.post("/setup", json=setup, headers=GOOD).status_code == 200
    answer = client.post("/predict", json=_tasks("/data/upload/1/a.jpg"), headers=GOOD)
    assert answer.status_code == 200 and not answer.json()["results"][0].get("error")
    assert attacker_server.seen == [] and studio_server.seen == [("/data/upload/1/a.jpg", "Token TOKEN")]


def test_every_way_out_of_the_root_gets_one_refusal_and_reads_nothing(shared_run, folders, monkeypatch):
    root, outside = folders
    opened = []
    real_open = open
    monkeypatch.setattr(task_images, "open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k),
                        raising=False)
    client = _client(shared_run.run, root)
    ways_out = [f"?d={outside / 'a.jpg'}", "?d=../outside/a.jpg", "?d=%2e%2e/outside/a.jpg", "?d=link.jpg",
                "?d=linked/a.jpg", f"?d={outside / 'passwd'}", "?d=img/missing.jpg", "?d=img", "?d=",
                "?d=img/a.jpg%00.png"]
    urls = [f"/data/local-files/{way}" for way in ways_out] + [f"file://{outside / 'a.jpg'}",
                                                               f"file://{outside / 'passwd'}"]
    answer = client.post("/predict", json=_tasks(*urls), headers=GOOD)
    assert answer.status_code == 400 and opened == []
    details = answer.json()["detail"].split("; ")
    assert len(details) == len(urls)
    for k, line in enumerate(details):  # the same words for a file outside, missing, a folder, a link out
        assert line.startswith(f"task {k + 1}: image ") and line.endswith("is not a readable file under the "
                                                                          "document root"), line
    inside = client.post("/predict", json=_tasks("/data/local-files/?d=img/a.jpg",
                                                 "http://elsewhere/data/local-files/?d=img/../img/a.jpg"),
                         headers=GOOD)
    assert inside.status_code == 200 and all(not r.get("error") for r in inside.json()["results"])


def test_one_bad_task_is_one_tasks_error(shared_run, folders):
    client = _client(shared_run.run, folders[0])
    (folders[0] / "img" / "text.jpg").write_text("not a photo")
    tasks = _tasks("/data/local-files/?d=img/a.jpg", "/data/local-files/?d=img/missing.jpg",
                   "/data/local-files/?d=img/text.jpg")
    tasks["tasks"].append({"id": 4, "data": ["not", "an", "object"]})
    answer = client.post("/predict", json=tasks, headers=GOOD)
    results = answer.json()["results"]
    assert answer.status_code == 200 and len(results) == 4
    assert not results[0].get("error") and results[0]["model_version"] == "fashionstyle:run"
    assert results[1]["result"] == [] and "task 2" in results[1]["error"]
    assert "task 3" in results[2]["error"] and results[3]["error"] == "task 4: data is not an object"


@pytest.mark.parametrize("body, detail", [
    (b"not json", "not JSON"), (b"[1, 2]", "a JSON list, not an object"),
    (b'{"tasks": {"id": 1}}', "`tasks` must be a list"), (b'{"tasks": "x"}', "`tasks` must be a list"),
    (b'{"tasks": [1, 2]}', "`tasks` must be a list")])
def test_malformed_bodies_are_refused_in_one_line(shared_run, folders, body, detail):
    client = _client(shared_run.run, folders[0])
    answer = client.post("/predict", content=body, headers={**GOOD, "Content-Type": "application/json"})
    assert answer.status_code == 400 and detail in answer.json()["detail"]


def test_the_services_limits_apply_to_each_request(shared_run, folders):
    root = folders[0]
    (root / "img" / "big.jpg").write_bytes(_photo_bytes(size=200))
    limits = ServiceLimits(max_images=3, max_request_pixels=3 * 64 * 64, max_bytes=200_000)
    client = _client(shared_run.run, root, limits=limits)
    small = "/data/local-files/?d=img/a.jpg"
    too_many = client.post("/predict", json=_tasks(small, small, small, small), headers=GOOD)
    assert too_many.status_code == 413 and "too many tasks: 4 (at most 3" in too_many.json()["detail"]
    too_large = client.post("/predict", json=_tasks("/data/local-files/?d=img/big.jpg", small), headers=GOOD)
    assert too_large.status_code == 413 and "too large in all" in too_large.json()["detail"]
    tight = _client(shared_run.run, root, limits=ServiceLimits(max_bytes=100))
    over = tight.post("/predict", json=_tasks(small), headers=GOOD)
    assert over.status_code in (400, 413) and "over 100 bytes" in over.text


def test_setup_refuses_a_project_missing_one_of_the_runs_labels(shared_run, folders):
    client = _client(shared_run.run, folders[0])
    answer = client.post("/setup", json={"schema": labelling_config(LABELS[:2])}, headers=GOOD)
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("the project has no choice for the run's label 'Dotted'")


def test_serve_refuses_a_missing_root_and_an_open_backend_beyond_loopback(shared_run, tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.delenv("FASHIONSTYLE_BACKEND_AUTH", raising=False)
    assert main(["serve", str(shared_run.run), "--label-studio", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["serve", str(shared_run.run), "--label-studio", str(tmp_path), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs --backend-auth USER:PASSWORD" in err[0]
    assert main(["serve", str(shared_run.run), "--label-studio", str(tmp_path), "--backend-auth", "nopassword"]) == 2
    assert "give USER:PASSWORD" in capsys.readouterr().err


def test_events_are_acknowledged_and_start_no_work(shared_run, folders):
    client = _client(shared_run.run, folders[0])
    assert client.post("/webhook", json={"action": "ANNOTATION_CREATED"}).status_code == 401
    for route, body in (("/webhook", {"action": "ANNOTATION_CREATED", "annotation": {}}), ("/train", {})):
        answer = client.post(route, json=body, headers=GOOD)
        assert answer.status_code == 200 and answer.json()["training"] is False
    assert client.post("/webhook", content=b"{", headers={**GOOD, "Content-Type": "application/json"}).status_code == 400


# -- issue 43: "Start training" runs a round where the operator opted in (serve --train-into) ------------------
@pytest.fixture
def slow_rounds(shared_run, folders, tmp_path, monkeypatch):
    """Rounds from the shared run into tmp_path/next whose command sleeps (the round itself: test_round.py)."""
    from fashionstyle.serving.rounds import Rounds

    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a-token")
    rounds = Rounds(shared_run.run, tmp_path / "next", folders[0])
    monkeypatch.setattr(rounds, "command", lambda project, url: [sys.executable, "-c", "import time; time.sleep(60)"])
    yield rounds
    rounds.stop()


def test_start_training_starts_one_round_and_never_two(shared_run, folders, slow_rounds):
    client = _client(shared_run.run, folders[0], rounds=slow_rounds, label_studio_url="http://127.0.0.1:8080")
    start = {"action": "START_TRAINING", "project": {"id": 3, "title": "round 1"}}
    assert client.post("/webhook", json=start).status_code == 401
    first = client.post("/webhook", json=start, headers=GOOD).json()
    assert first["training"] is True and first["status"] == "started"
    assert slow_rounds.log.is_file()  # the round's output goes to OUT.round/round.log
    for route, body in (("/webhook", start), ("/train", {"project": "3.1765000000", "annotations": []})):
        again = client.post(route, json=body, headers=GOOD).json()
        assert again["status"] == "already running" and str(slow_rounds.out) in again["detail"]
    annotated = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 3}}, headers=GOOD)
    assert annotated.json()["training"] is False  # a round per click would retrain on every label


def test_a_round_is_refused_in_one_line_without_a_project_address_or_token(shared_run, folders, slow_rounds,
                                                                           monkeypatch):
    client = _client(shared_run.run, folders[0], rounds=slow_rounds)
    no_address = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 3}}, headers=GOOD)
    assert no_address.status_code == 400 and "no Label Studio address yet" in no_address.json()["detail"]
    assert "names no project id" in client.post("/train", json={}, headers=GOOD).json()["detail"]
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    client.post("/setup", json={"schema": labelling_config(LABELS), "hostname": "http://127.0.0.1:8080"},
                headers=GOOD)
    no_token = client.post("/train", json={"project": "3.1765000000"}, headers=GOOD)
    assert no_token.status_code == 400 and "no Label Studio token" in no_token.json()["detail"]


def test_the_services_token_goes_only_to_the_address_its_operator_named(shared_run, folders, slow_rounds,
                                                                        monkeypatch):
    spawned = []
    monkeypatch.setattr(slow_rounds, "_spawn", lambda project, url, token: spawned.append((url, token)) or
                        type("Done", (), {"pid": 1, "poll": lambda self: 0})())
    setup = {"schema": labelling_config(LABELS), "hostname": "http://127.0.0.1:9999", "access_token": "setup-token"}
    client = _client(shared_run.run, folders[0], rounds=slow_rounds)  # no --label-studio-url: /setup's address
    client.post("/setup", json=setup, headers=GOOD)
    client.post("/train", json={"project": "3.1"}, headers=GOOD)
    named = _client(shared_run.run, folders[0], rounds=slow_rounds, label_studio_url="http://127.0.0.1:8080")
    named.post("/setup", json=setup, headers=GOOD)
    named.post("/train", json={"project": "3.1"}, headers=GOOD)
    # $LABEL_STUDIO_API_KEY (a-token) only to the operator's address; to /setup's, only /setup's own token
    assert spawned == [("http://127.0.0.1:9999", "setup-token"), ("http://127.0.0.1:8080", "a-token")]


def test_serve_train_into_needs_the_backend_and_a_new_folder(shared_run, tmp_path, capsys):
    assert main(["serve", str(shared_run.run), "--train-into", str(tmp_path / "next")]) == 2
    assert "--train-into needs --label-studio" in capsys.readouterr().err
    assert main(["serve", str(shared_run.run), "--label-studio", str(tmp_path), "--train-into",
                 str(shared_run.run)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
