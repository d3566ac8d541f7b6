"""The service as a Label Studio ML backend: a sub-app with the backend protocol's routes, as safe as /predict.

    app = backend_app(predictor, "fashionstyle:lite0", "/srv/photos", auth="ml:secret")   # a FastAPI app
    mount_label_studio(service_app, "/srv/photos", auth="ml:secret")   # at /label-studio of `serve`'s app
    # in Label Studio: Settings > Model > Connect model, URL http://HOST:PORT/label-studio, with
    # "Use basic authentication" and the same user and password

Routes (label-studio-ml's protocol, as Label Studio 1.x calls it):
    GET  /health   {"status": "UP", "model_version": ...} (no credentials needed)
    POST /setup    {project, schema, hostname, access_token} -> {"model_version": ...}; a labelling
                   config whose "style" choices are not exactly the run's labels is refused (400, one line)
    POST /webhook  Label Studio's events, and POST /train (its older "start training"): acknowledged; with
                   `rounds` (serve --train-into OUT), START_TRAINING and /train start one labelling round
                   in a process of its own (rounds.py; a second start while it runs: "already running")
    POST /predict  {tasks: [{id, data: {image: URL}}], ...} -> {"results": [{result, score,
                   model_version}]}, one per task, in order: the run's decided labels ticked, and as
                   score 1 - the photo's threshold uncertainty (acquisition.py). A task whose photo
                   cannot be used gets an empty result and its `error`; when none can, the answer is 4xx.

With credentials set (`auth="USER:PASSWORD"`, `serve --backend-auth`, or FASHIONSTYLE_BACKEND_AUTH),
/setup and /predict need them as HTTP basic auth (401 otherwise), compared in constant time; a backend
listening beyond this machine must have them (`check_exposure`). Photos come only from the document
root or the Label Studio origin (task_images.py); the service's limits apply to each request: at most
`max_images` tasks, `max_bytes` per photo, the pixel limits, the decoders, the body size.
"""
from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.labelstudio.tasks import check_schema, choices_result, pre_annotation_scores
from fashionstyle.serving.body import RequestBody
from fashionstyle.serving.limits import ServiceLimits
from fashionstyle.serving.predict import Predictions
from fashionstyle.serving.rounds import Rounds
from fashionstyle.serving.task_images import TaskImageRefused, TaskImages

MOUNT_PATH = "/label-studio"
AUTH_ENV = "FASHIONSTYLE_BACKEND_AUTH"
DOWNLOADS_DEADLINE_S = 60.0  # for all of one request's photos
TRAIN_EVENT = "START_TRAINING"  # the webhook action of the project's "Start training"


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """'USER:PASSWORD' (the flag, else FASHIONSTYLE_BACKEND_AUTH) as a pair; None when neither is set."""
    value = value if value is not None else os.environ.get(AUTH_ENV)
    if value is None or value == "":
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise FashionStyleError(f"--backend-auth ({AUTH_ENV}): give USER:PASSWORD, both non-empty")
    return user, password


def check_exposure(host: str, auth: tuple[str, str] | None) -> None:
    """Refuse a backend without credentials on an address other machines can reach."""
    if auth is None and not _is_loopback(host):
        raise FashionStyleError(f"--label-studio on --host {host} needs --backend-auth USER:PASSWORD (or "
                                f"{AUTH_ENV}): without it anyone who reaches the port could point the backend "
                                "at another Label Studio; or listen on 127.0.0.1")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _authorized(request: Request, auth: tuple[str, str] | None) -> bool:
    if auth is None:
        return True
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        given = base64.b64decode(encoded, validate=True) if scheme.lower() == "basic" else b""
    except ValueError:
        given = b""
    expected = f"{auth[0]}:{auth[1]}".encode()
    return hmac.compare_digest(given, expected)


async def _json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object, or 400 in one line (not JSON, not an object, cut short)."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the body is not JSON (Content-Type: application/json)") from None
    except Exception:  # the client went away before its Content-Length was sent
        raise HTTPException(400, "the body ended before its Content-Length") from None
    if not isinstance(body, dict):
        raise HTTPException(400, f"the body is a JSON {type(body).__name__}, not an object")
    return body


class Backend:
    """The backend's state and work: the run's predictions, where photos come from, the credentials."""

    def __init__(self, predictions: Predictions, model_version: str, images: TaskImages,
                 auth: tuple[str, str] | None, point: OperatingPoint | None = None):
        self.predictions, self.model_version, self.images, self.auth = predictions, model_version, images, auth
        self.names = list(predictions.names)
        self.point = point or predictions.predictor.decision  # the pre-annotations' (a labelling point)

    def setup(self, body: dict[str, Any]) -> dict:
        _refuse_bad(lambda: check_schema(str(body.get("schema") or ""), self.names))
        self.images.connect(str(body.get("hostname") or ""), str(body.get("access_token") or ""))
        return {"model_version": self.model_version}

    def predict(self, body: dict[str, Any]) -> dict | JSONResponse:
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            raise HTTPException(400, "`tasks` must be a list of task objects ({id, data: {image: URL}})")
        if body.get("label_config"):
            _refuse_bad(lambda: check_schema(str(body["label_config"]), self.names))
        limits = self.predictions.limits
        if len(tasks) > limits.max_images:
            raise HTTPException(413, f"too many tasks: {len(tasks)} (at most {limits.max_images} per request, "
                                     "--max-images)")
        photos, errors = self._photos(tasks, limits)
        return self._answer(tasks, photos, errors)

    def start_round(self, rounds: Rounds, project: Any) -> dict:
        """Start a round of the project `project` names, from the Label Studio /setup gave (or --label-studio-url)."""
        try:
            project_id = int(project)
        except (TypeError, ValueError):
            raise HTTPException(400, f"the training event names no project id (got {project!r})") from None
        if not self.images.origin:
            raise HTTPException(400, "no Label Studio address yet: connect the model in the project first (/setup), "
                                     "or start serve with --label-studio-url")
        return _refuse_bad(lambda: rounds.start(project_id, self.images.origin, self.images.token,
                                                operator_url=bool(self.images.fixed_origin)))

    def _photos(self, tasks: list[dict], limits: ServiceLimits) -> tuple[dict[int, bytes], dict[int, str]]:
        """Each task's photo bytes, or its error, by index; downloads stop at the request's deadline."""
        photos, errors, end = {}, {}, time.monotonic() + DOWNLOADS_DEADLINE_S
        for i, task in enumerate(tasks):
            if time.monotonic() > end:
                errors[i] = f"task {task.get('id', '?')}: not read (the request's {DOWNLOADS_DEADLINE_S:g} s ran out)"
                continue
            try:
                photos[i] = self.images.read(task, limits.max_bytes)
            except TaskImageRefused as err:
                errors[i] = str(err)
        return photos, errors

    def _answer(self, tasks: list[dict], photos: dict[int, bytes], errors: dict[int, str]) -> dict | JSONResponse:
        order = list(photos)
        names = [f"task {tasks[i].get('id', '?')}" for i in order]
        made = self.predictions.answer_data(names, [photos.pop(i) for i in order], point=self.point) if order else None
        if isinstance(made, JSONResponse) or not made:
            details = [errors[i] for i in sorted(errors)] + ([] if made is None else [json.loads(made.body)["detail"]])
            status = 400 if made is None else made.status_code
            return JSONResponse({"detail": "; ".join(details)}, status_code=status)
        records = dict(zip(order, made["predictions"]))
        return {"results": [self._result(records.get(i), errors.get(i)) for i in range(len(tasks))]}

    def _result(self, record: dict | None, error: str | None) -> dict:
        if record is None or record.get("error"):
            return {"result": [], "score": 0.0, "model_version": self.model_version,
                    "error": error or f"{record['image']}: {record['error']}"}  # the task named, as its other errors
        probs = np.array([[record["scores"][n] for n in self.names]], np.float64)
        return {"result": choices_result(record["labels"]), "score": pre_annotation_scores(probs, self.point)[0],
                "model_version": self.model_version}


def backend_app(predictor: Any, model_version: str, document_root: str | Path | None = None, *,
                auth: str | tuple[str, str] | None = None, label_studio_url: str | None = None,
                limits: ServiceLimits | None = None, predictions: Predictions | None = None,
                rounds: Rounds | None = None, point: OperatingPoint | None = None) -> FastAPI:
    """A FastAPI app answering Label Studio's ML backend calls with `predictor`'s labels (see the module),
    decided at `point` (default: the predictor's own)."""
    limits = predictions.limits if predictions is not None else limits or ServiceLimits()
    predictions = predictions or Predictions(predictor, model_version, limits, "torch")
    credentials = auth if isinstance(auth, tuple) else parse_auth(auth)
    backend = Backend(predictions, model_version, TaskImages(document_root, label_studio_url), credentials, point)
    app = FastAPI(title="fashionstyle Label Studio ML backend", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(RequestBody, max_bytes=limits.max_bytes)

    @app.get("/health")
    @app.get("/")
    def health() -> dict:
        return {"status": "UP", "model_version": model_version, "model_class": "fashionstyle"}

    @app.post("/setup")
    async def setup(request: Request) -> Any:
        _require(request, credentials)
        return backend.setup(await _json_object(request))

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        _require(request, credentials)
        body = await _json_object(request)
        return await run_in_threadpool(backend.predict, body)

    @app.post("/webhook")
    async def webhook(request: Request) -> Any:
        """Label Studio's events: START_TRAINING starts a round where the operator opted in (`rounds`); the
        annotation events are acknowledged (a round per click would retrain on every label)."""
        _require(request, credentials)
        body = await _json_object(request)
        event = str(body.get("action") or "")
        project = body.get("project")
        if event != TRAIN_EVENT or rounds is None:
            return _no_round(event, rounds)
        return backend.start_round(rounds, project.get("id") if isinstance(project, dict) else None)

    @app.post("/train")
    async def train(request: Request) -> Any:
        """The older "start training" call: {project: "ID.CREATED", annotations, label_config}."""
        _require(request, credentials)
        body = await _json_object(request)
        if rounds is None:
            return _no_round("train", rounds)
        return backend.start_round(rounds, str(body.get("project") or "").split(".")[0])

    return app


def _no_round(event: str, rounds: Rounds | None) -> dict:
    """The answer to an event that starts no round."""
    why = ("only START_TRAINING (the project's \"Start training\") starts a round" if rounds is not None else
           "this backend does not train on events (serve --train-into OUT lets \"Start training\" run a round); "
           "export the project and run fashionstyle round")
    return {"status": "ok", "event": event or "train", "training": False, "detail": why}


def _require(request: Request, auth: tuple[str, str] | None) -> None:
    if not _authorized(request, auth):
        raise HTTPException(401, "this backend needs its user and password (HTTP basic auth: Label Studio's "
                                 "\"Use basic authentication\")", headers={"WWW-Authenticate": 'Basic realm="fashionstyle"'})


def _refuse_bad(check: Any) -> Any:
    """`check()`, its FashionStyleError answered as 400 with its one line."""
    try:
        return check()
    except FashionStyleError as err:
        raise HTTPException(status_code=400, detail=str(err)) from None


def mount_label_studio(app: FastAPI, document_root: str | Path | None = None, run_name: str | None = None,
                       path: str = MOUNT_PATH, auth: str | tuple[str, str] | None = None,
                       label_studio_url: str | None = None, rounds: Rounds | None = None) -> FastAPI:
    """Mount the ML backend at `path` of a service made by serving.app.create_app (its predictor, limits
    and decoders); predictions are tagged `fashionstyle:RUN_NAME`; `rounds`: "Start training" runs one."""
    run_name = run_name or getattr(app.state, "run_name", None)
    version = f"fashionstyle:{run_name}" if run_name else "fashionstyle"
    app.mount(path, backend_app(app.state.predictor, version, document_root, auth=auth,
                                label_studio_url=label_studio_url, predictions=app.state.predictions,
                                rounds=rounds, point=pre_annotation_point(app)))
    return app


def pre_annotation_point(app: FastAPI) -> OperatingPoint | None:
    """The point a service's backend pre-annotates at: the service's own when `serve --operating-point` named
    one, else the run's labelling point (core/operating_points.labelling_point; made here, when a backend is
    mounted, not for every service)."""
    contents = getattr(app.state, "contents", None)
    if contents is None:
        return None
    name = app.state.operating_point
    return contents.point(name) if name else contents.labelling_point()
