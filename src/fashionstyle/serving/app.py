"""HTTP service: a run directory behind a small JSON API and a one-page web UI (the routes).

    app = create_app("runs/densenet201", max_images=4)    # an ASGI app (FastAPI); limits: limits.py
    serve("runs/densenet201", port=8000)                  # server.py; or `fashionstyle serve RUN`

Endpoints:
    GET  /          the web page (drop photos, see each style's probability and threshold); also HEAD
    POST /predict   multipart form, one or more image files under the field `files`; with ?maps=true
                    also a Grad-CAM overlay per decided style (torch runtime). Answers the run's labels
                    and thresholds once and a prediction record per file in upload order (schema.py,
                    predict.py): a file that cannot be used is a record with `error` set.
    GET  /labels    label names, tuned thresholds and descriptions (`label_info`; JD styles by default)
    GET  /health    {"status": "ok", "labels": n, "run": name, the limits, ...}; also HEAD
    GET  /docs      OpenAPI documentation: Swagger UI, from files installed with the package
                    (fastapi-offline), so that it works with no network (no /redoc: ReDoc fetches its logo)

The run is checked and the model loaded once, when the app is created; every request refused is
answered JSON {"detail": "..."}.
"""
from __future__ import annotations

from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline

from fashionstyle.core.run import RunDir
from fashionstyle.inference.runtimes import load_predictor
from fashionstyle.serving.body import RequestBody
from fashionstyle.serving.label_info import label_descriptions
from fashionstyle.serving.limits import ServiceLimits
from fashionstyle.serving.predict import Predictions
from fashionstyle.serving.schema import ErrorResponse, PredictResponse

DOCS_STATIC = "/docs-static"  # Swagger UI's files, served from the installed package
REFUSALS = {code: {"model": ErrorResponse, "description": why} for code, why in (
    (400, "no files, or not a multipart form"), (413, "over a limit (body, images, pixels)"),
    (415, "no file is a readable image"))}


def create_app(run_dir: str | Path, runtime: str = "torch", label_info: str | Path | None = None,
               limits: ServiceLimits | None = None, loading: Callable[[str], None] | None = None,
               operating_point: str | None = None, **limit_values: Any) -> FastAPI:
    """The service for one run; the run is checked and its model loaded here, once.

    `runtime`: "torch" (Predictor), "onnx" or "onnx-int8" (OnnxPredictor, exporting on first use).
    `label_info`: a CSV `label,description` of descriptions shown on the page (label_info.py).
    `limits`, or single limits by name (`max_images=4`): ServiceLimits, refused before the run is read.
    `loading(line)`: told, once every setting is checked, that the model is loading (the slow part).
    `operating_point`: the point labels are decided at unless a request names another (None: the run's own).
    """
    limits = replace(limits or ServiceLimits(), **{k: v for k, v in limit_values.items() if v is not None})
    run = RunDir.open(run_dir)  # a run with unusable files (a NaN threshold, ...) is refused here
    contents = run.contents()
    names = contents.label_names
    points = {name: contents.point(name) for name in contents.point_names()}
    contents.point(operating_point)  # an unknown name: one line, before the model loads
    descriptions = label_descriptions(names, label_info)  # a bad file is refused before the model loads
    if loading is not None:
        loading(f"loading {run.path}'s model ({runtime})")
    predictor = load_predictor(contents, runtime, operating_point=operating_point)
    run_name = run.path.resolve().name
    predictions = Predictions(predictor, run_name, limits, runtime, points)
    app = FastAPIOffline(title="fashionstyle", version=_version(), static_url=DOCS_STATIC, redoc_url=None,
                         description=f"Multi-label fashion style recognition, run `{run_name}`.")
    app.state.predictor, app.state.limits, app.state.predictions = predictor, limits, predictions
    app.state.contents, app.state.operating_point = contents, operating_point  # the Label Studio backend's
    app.add_middleware(RequestBody, max_bytes=limits.max_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def index() -> HTMLResponse:
        page = resources.files("fashionstyle.serving").joinpath("static", "index.html")
        return HTMLResponse(page.read_text(encoding="utf-8"))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "labels": len(names), "run": run_name, "runtime": runtime,
                **limits.as_dict(), "maps": predictions.heat.available}

    app.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)  # for monitors

    @app.get("/labels")
    def labels() -> dict:
        return {"labels": [{"name": n, "threshold": t, "description": descriptions.get(n)}
                           for n, t in predictions.thresholds.items()],
                "beta": float(predictor.tuner.beta), "operating_point": predictor.decision.name,
                "operating_points": {name: point.describe(names) for name, point in predictions.points.items()}}

    @app.post("/predict", response_model=PredictResponse, response_model_exclude_unset=True, responses=REFUSALS)
    def predict(files: list[UploadFile] | None = File(None, description="one or more images"),
                maps: bool = Query(False, description="also a heat-map overlay per decided style "
                                                      "(a backward pass each; torch runtime only)"),
                operating_point: str | None = Query(None, description="decide at this operating point of the "
                                                                     "run (default: the service's)")) -> Any:
        return predictions.answer(files, maps, operating_point)

    return app


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """A form FastAPI cannot read (no multipart, a text field under `files`): 400 in one line."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                         for e in getattr(exc, "errors", lambda: [])())
    return JSONResponse({"detail": f"invalid request ({problems}); send images as multipart form data under "
                                   "the field `files`"}, status_code=400)


def _version() -> str:
    from fashionstyle.core.version import __version__

    return __version__
