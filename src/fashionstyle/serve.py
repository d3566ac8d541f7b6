"""HTTP service: a run directory behind a small JSON API and a one-page web UI.

    app = create_app("runs/densenet201")           # an ASGI app (FastAPI)
    serve("runs/densenet201", port=8000)           # or: python -m fashionstyle.serve RUN --port 8000

Endpoints:
    GET  /          the web page (drop photos, see each style's probability and threshold)
    POST /predict   multipart form, one or more image files under the field `files`
    GET  /labels    label names and tuned thresholds
    GET  /health    {"status": "ok", "labels": n, "run": name, ...}
    GET  /docs      OpenAPI documentation

The model loads once, when the app is created; inference is serialised by a
lock (decoding runs concurrently in the thread pool). Request bodies over
`max_bytes` (by Content-Length, and by the bytes actually received), more than
`max_images` files, non-images and decompression bombs are refused with a
JSON {"detail": "..."} and a 4xx status.
"""
from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image

from .errors import FashionStyleError
from .run import RunDir
from .runtimes import RUNTIMES, load_predictor

DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_IMAGES = 16


class BodyLimit:
    """ASGI middleware: refuse request bodies over `max_bytes` with 413, before the app parses them.

    Checks Content-Length first, then counts the bytes actually received (chunked
    uploads, lying headers); an accepted body is buffered and replayed to the app.
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _send_json(send, 400, "invalid Content-Length header")
                return
            if declared > self.max_bytes:
                await _send_json(send, 413, self._too_large(declared))
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await _send_json(send, 413, self._too_large(size, at_least=message.get("more_body", False)))
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> dict:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)

    def _too_large(self, size: int, at_least: bool = False) -> str:
        more = "more than " if at_least else ""
        return (f"request body too large: {more}{size:,} bytes (the limit is {self.max_bytes:,} bytes); "
                "send fewer or smaller images")


async def _send_json(send: Any, status: int, detail: str) -> None:
    response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def decode_image(data: bytes, filename: str, max_pixels: int | None = None) -> Image.Image:
    """Decode uploaded bytes as RGB, or raise HTTPException (413 for bombs, 415 for non-images).

    Images over `max_pixels` (default: Pillow's MAX_IMAGE_PIXELS, about 89M) are refused
    from their header, before decoding.
    """
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if limit and width * height > limit:  # Pillow only warns up to twice the limit
                raise HTTPException(413, f"{filename}: image too large ({width}x{height} = "
                                         f"{width * height:,} pixels; the limit is {limit:,})")
            return image.convert("RGB")
    except Image.DecompressionBombError:
        raise HTTPException(413, f"{filename}: image too large (over {Image.MAX_IMAGE_PIXELS:,} pixels; "
                                 "refused as a possible decompression bomb)") from None
    except HTTPException:
        raise
    except Image.UnidentifiedImageError:
        reason = "unknown or unsupported format"
    except Exception as err:  # noqa: BLE001 - anything Pillow cannot decode is not an image to us
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
    raise HTTPException(415, f"{filename}: not a readable image ({reason}); "
                             "send JPEG, PNG, WebP, BMP or GIF files")


def create_app(run_dir: str | Path, max_bytes: int = DEFAULT_MAX_BYTES,
               max_images: int = DEFAULT_MAX_IMAGES, runtime: str = "torch",
               max_pixels: int | None = None) -> FastAPI:
    """The service for one run; its model is loaded here, once.

    `runtime`: "torch" (Predictor), "onnx" or "onnx-int8" (OnnxPredictor, exporting on first use).
    `max_pixels`: largest image accepted (default: Pillow's MAX_IMAGE_PIXELS).
    """
    if max_bytes < 1 or max_images < 1:
        raise FashionStyleError(f"max_bytes and max_images must be positive, got {max_bytes}, {max_images}")
    run = RunDir.open(run_dir)
    predictor = load_predictor(run.path, runtime)
    names = list(predictor.label_names)
    thresholds = [float(t) for t in predictor.tuner.thresholds_]
    run_name = run.path.resolve().name
    lock = threading.Lock()

    app = FastAPI(title="fashionstyle", version=_version(),
                  description=f"Multi-label fashion style recognition, run `{run_name}`.")
    app.state.predictor = predictor
    app.add_middleware(BodyLimit, max_bytes=max_bytes)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                             for e in exc.errors())
        return JSONResponse({"detail": f"invalid request ({problems}); send images as multipart "
                                       "form data under the field `files`"}, status_code=400)

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        page = resources.files("fashionstyle").joinpath("static", "index.html").read_text(encoding="utf-8")
        return HTMLResponse(page)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "labels": len(names), "run": run_name, "runtime": runtime,
                "max_bytes": max_bytes, "max_images": max_images}

    @app.get("/labels")
    def labels() -> dict:
        return {"labels": [{"name": n, "threshold": t} for n, t in zip(names, thresholds)],
                "beta": float(predictor.tuner.beta)}

    @app.post("/predict")
    def predict(files: list[UploadFile] | None = File(None, description="one or more images")) -> dict:
        files = [f for f in files or [] if f is not None]
        if not files:
            raise HTTPException(400, "no images: send one or more files under the form field `files`")
        if len(files) > max_images:
            raise HTTPException(413, f"too many images: {len(files)} (at most {max_images} per request)")
        filenames = [f.filename or f"file {i + 1}" for i, f in enumerate(files)]
        images = [decode_image(f.file.read(), name, max_pixels) for f, name in zip(files, filenames)]
        start = time.perf_counter()
        with lock:
            probs = predictor.predict_proba_images(images)  # (N, L)
        elapsed = time.perf_counter() - start
        flags = predictor.tuner.predict(probs)
        results = []
        for name, p, f in zip(filenames, probs, flags):
            chosen = sorted((j for j in range(len(names)) if f[j]), key=lambda j: -p[j])
            results.append({"filename": name, "labels": [names[j] for j in chosen],
                            "probs": {n: float(v) for n, v in zip(names, p)},
                            "thresholds": dict(zip(names, thresholds))})
        return {"run": run_name, "results": results, "inference_ms": round(elapsed * 1000, 2)}

    return app


def _version() -> str:
    from . import __version__

    return __version__


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          **limits: Any) -> None:
    """Run the service with uvicorn until interrupted (one process; the model is loaded once)."""
    import uvicorn

    app = create_app(run_dir, **limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m fashionstyle.serve RUN [--host H] [--port P] ...`"""
    parser = argparse.ArgumentParser(prog="python -m fashionstyle.serve", description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--max-images", type=int, default=DEFAULT_MAX_IMAGES)
    parser.add_argument("--max-pixels", type=int, default=None, help="(default: Pillow's limit, ~89M)")
    parser.add_argument("--runtime", choices=tuple(RUNTIMES), default="torch")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    try:
        serve(args.run, args.host, args.port, log_level=args.log_level, max_bytes=args.max_bytes,
              max_images=args.max_images, runtime=args.runtime, max_pixels=args.max_pixels)
    except FashionStyleError as err:
        print(f"fashionstyle serve: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
