"""The service as a Label Studio ML backend: a sub-app with the backend protocol's routes.

    app = backend_app(predictor, "lite0", document_root="/srv/photos")  # a FastAPI app of its own
    mount_label_studio(service_app, "/srv/photos", "lite0")          # at /label-studio of `serve`'s app
    # in Label Studio: Settings > Model > Connect model, URL http://HOST:PORT/label-studio

Routes (label-studio-ml's protocol, as Label Studio 1.x calls it):
    GET  /health   {"status": "UP", "model_version": ...}
    POST /setup    {project, schema, hostname, access_token} -> {"model_version": ...}; a labelling
                   config whose "style" choices are not the run's labels is refused (400, one line)
    POST /predict  {tasks: [{id, data: {image: URL}}], ...} -> {"results": [{result, score,
                   model_version}]}, one per task, in order: the run's decided labels ticked, and as
                   score 1 - the photo's threshold uncertainty (acquisition.py), so sorting by prediction
                   score, ascending, puts the photos a label would teach most first.

Photos are read from Label Studio's local-files URLs under `document_root`, or else downloaded from
the `hostname` /setup gave, with its access token (uploaded files).
"""
from __future__ import annotations

import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin

import numpy as np
from fastapi import FastAPI, HTTPException
from PIL import Image

from fashionstyle.analysis.acquisition import uncertainty_scores
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.images import open_rgb
from fashionstyle.inference.predictor import BasePredictor
from fashionstyle.labelstudio import FROM_NAME, LOCAL_FILES_URL, TO_NAME
from fashionstyle.labelstudio.tasks import choices_result, decided

DOWNLOAD_TIMEOUT_S = 20.0
MOUNT_PATH = "/label-studio"


def check_schema(schema: str, label_names: list[str]) -> None:
    """Refuse a labelling config without the "style" choices, or with a choice that is not a run label."""
    try:
        root = ET.fromstring(schema)
    except ET.ParseError as err:
        raise FashionStyleError(f"the project's labelling config is not XML ({err})") from None
    tags = [t for t in root.iter("Choices") if t.get("name") == FROM_NAME]
    if not tags:
        raise FashionStyleError(f"the project's labelling config has no Choices named {FROM_NAME!r}: a project "
                                "of other labels; make it from `fashionstyle suggest --tasks`'s config")
    unknown = [c.get("value") for c in tags[0].iter("Choice") if c.get("value") not in label_names]
    if unknown:
        raise FashionStyleError(f"the project's choice {unknown[0]!r} is not a label of this run; "
                                f"valid: {', '.join(label_names)}")


class _Source:
    """Where the photos of tasks come from: local files, else Label Studio itself (set by /setup)."""

    def __init__(self, document_root: str | Path | None):
        self.document_root = Path(document_root) if document_root else None
        self.hostname = ""
        self.token = ""

    def image(self, task: dict[str, Any]) -> Image.Image:
        where = f"task {task.get('id', '?')}"
        url = (task.get("data") or {}).get(TO_NAME)
        if not isinstance(url, str) or not url.strip():
            raise FashionStyleError(f"{where}: has no image (data key {TO_NAME!r})")
        if url.startswith(LOCAL_FILES_URL) and self.document_root is not None:
            return open_rgb(self.document_root / unquote(url[len(LOCAL_FILES_URL):]))
        if not self.hostname and "://" not in url:
            raise FashionStyleError(f"{where}: image {url!r} cannot be read: serve with the Label Studio document "
                                    "root, or connect the backend so that /setup gives the host")
        request = urllib.request.Request(urljoin(self.hostname + "/", url),
                                         headers={"Authorization": f"Token {self.token}"} if self.token else {})
        try:
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as answer:
                return open_rgb(answer.read(), name=url)
        except OSError as err:
            raise FashionStyleError(f"{where}: could not read image {url!r} ({err})") from None


def backend_app(predictor: BasePredictor, model_version: str, document_root: str | Path | None = None) -> FastAPI:
    """A FastAPI app answering Label Studio's ML backend calls with `predictor`'s labels."""
    app = FastAPI(title="fashionstyle Label Studio ML backend", docs_url=None, redoc_url=None, openapi_url=None)
    names = list(predictor.label_names)
    source = _Source(document_root)

    @app.get("/health")
    @app.get("/")
    def health() -> dict:
        return {"status": "UP", "model_version": model_version, "model_class": "fashionstyle"}

    @app.post("/setup")
    def setup(body: dict[str, Any]) -> dict:
        _refuse_bad(lambda: check_schema(str(body.get("schema") or ""), names))
        source.hostname = str(body.get("hostname") or "").rstrip("/")
        source.token = str(body.get("access_token") or "")
        return {"model_version": model_version}

    @app.post("/predict")
    def predict(body: dict[str, Any]) -> dict:
        tasks = body.get("tasks") or []
        if body.get("label_config"):
            _refuse_bad(lambda: check_schema(str(body["label_config"]), names))
        images = _refuse_bad(lambda: [source.image(t) for t in tasks])
        probs = predictor.predict_proba_images(images) if images else np.zeros((0, len(names)), np.float32)
        certainty = 1.0 - uncertainty_scores(probs, predictor.thresholds)
        return {"results": [{"result": choices_result(decided(p, predictor.thresholds, names)),
                             "score": round(float(c), 6), "model_version": model_version}
                            for p, c in zip(probs, certainty)]}

    return app


def _refuse_bad(check: Any) -> Any:
    """`check()`, its FashionStyleError answered as 400 with its one line."""
    try:
        return check()
    except FashionStyleError as err:
        raise HTTPException(status_code=400, detail=str(err)) from None


def mount_label_studio(app: FastAPI, document_root: str | Path | None = None, run_name: str | None = None,
                       path: str = MOUNT_PATH) -> FastAPI:
    """Mount the ML backend at `path` of a service made by serving.app.create_app (it uses its predictor);
    predictions are tagged `fashionstyle:RUN_NAME`."""
    run_name = run_name or getattr(app.state, "run_name", None)
    version = f"fashionstyle:{run_name}" if run_name else "fashionstyle"
    app.mount(path, backend_app(app.state.predictor, version, document_root))
    return app
