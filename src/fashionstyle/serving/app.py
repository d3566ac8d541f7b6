"""HTTP service: a run directory behind a small JSON API and a one-page web UI.

    app = create_app("runs/densenet201")           # an ASGI app (FastAPI)
    serve("runs/densenet201", port=8000)           # or: python -m fashionstyle.serving.app RUN --port 8000

Endpoints:
    GET  /          the web page (drop photos, see each style's probability and threshold)
    POST /predict   multipart form, one or more image files under the field `files`; with
                    ?maps=true also a Grad-CAM overlay (base64 PNG) per predicted style (torch runtime).
                    {"results": [...], "errors": [...]}: a result per readable file and an error
                    ({"index", "filename", "status", "detail"}) per file that is not an image (415)
                    or over the per-image limits (413), with status 200 while one file is good;
                    when none is, the first file's error status, "detail" joining every file's
                    error and the same "errors" list. `index` is the file's position in the upload.
    GET  /labels    label names, tuned thresholds and descriptions (`label_info`; JD styles by default)
    GET  /health    {"status": "ok", "labels": n, "run": name, ...}
    GET  /docs      OpenAPI documentation: Swagger UI, from files installed with the package
                    (fastapi-offline), so that it works with no network (no /redoc: ReDoc fetches its logo)

The model loads once, when the app is created; inference is serialised by a
lock. What one request may cost is bounded before anything is decoded:
bodies over `max_bytes` (by Content-Length, and by the bytes actually
received), more than `max_images` files, and the readable images over
`max_request_pixels` in all (each read from its header) are refused with 413,
every refusal JSON {"detail": "..."}; an image over `max_pixels` or more
elongated than MAX_ASPECT:1 is that file's error (413), as a non-image is
(415). At most `decoders` requests decode (and then hold their decoded
images) at once, each on one of `decoders` threads, one image at a time; an
image whose shorter side is over twice what the model's preprocessing resizes
it to is decoded at reduced size (JPEG at 1/2 to 1/8 scale, other formats
box-reduced by a whole factor before conversion). Peak
memory above the idle service is thus about `decoders` x one image of
`max_pixels` (4 bytes a pixel), measured by bench/serve_load.py. A reduced
image's probabilities differ slightly from `predict`'s on the same file.
"""
from __future__ import annotations

import argparse
import base64
import importlib.util
import io
import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn, Sequence

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from PIL import ExifTags, Image

from fashionstyle.core.choices import RUNTIMES
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.core.run import RunDir
from fashionstyle.data.images import to_rgb
from fashionstyle.inference.runtimes import load_predictor
from fashionstyle.serving.label_info import label_descriptions, read_label_info

DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_IMAGES = 16
DEFAULT_MAX_PIXELS = 50_000_000  # per image (a 48 MP photo); Pillow's bomb limit is ~89M
DEFAULT_MAX_REQUEST_PIXELS = 200_000_000  # per request: 16 photos of 12 MP, or 4 at the image limit
DEFAULT_DECODERS = 2  # requests decoding at once
MAX_ASPECT = 20  # longer side / shorter side; beyond it the model's resize alone could take GBs
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds for a request line and headers to arrive
DOCS_STATIC = "/docs-static"  # Swagger UI's files, served from the installed package


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
        del chunks  # one copy of the body, not two, while the request runs

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


def image_size(data: bytes, filename: str, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) from the header alone, or raise HTTPException: 413 over `max_pixels`
    (default DEFAULT_MAX_PIXELS) or MAX_ASPECT, 415 for non-images."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return _check_size(image.size, filename, max_pixels or DEFAULT_MAX_PIXELS)
    except Exception as err:  # noqa: BLE001 - see _refuse
        _refuse(err, filename, max_pixels or DEFAULT_MAX_PIXELS)


def decode_image(data: bytes, filename: str, max_pixels: int | None = None,
                 min_side: int | None = None) -> Image.Image:
    """Decode uploaded bytes as `predict` decodes files (images.to_rgb: upright 8-bit RGB), or raise
    HTTPException as image_size does.

    The header is checked first (`max_pixels`, MAX_ASPECT). With `min_side` a large image is decoded
    at reduced size: JPEG in draft mode (1/2, 1/4 or 1/8 scale), then any format box-reduced by a
    whole factor, keeping its shorter side at least `min_side` and its pixels at most about
    4 min_side^2 (fewer only beyond 4:1). Peak memory: the image decoded once (at most 4 bytes a
    pixel) and a strip.
    """
    limit = max_pixels or DEFAULT_MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as image:
            _check_size(image.size, filename, limit)
            factor = _reduction(image.size, min_side) if min_side else 1
            if factor > 1:
                image.draft(None, (-(-image.width // factor), -(-image.height // factor)))  # JPEG only
            image.load()
            factor = _reduction(image.size, min_side) if min_side else 1
            if factor == 1:
                return to_rgb(image)
            orientation = image.getexif().get(ExifTags.Base.Orientation)
            reduced = _reduce(image, factor)
        reduced.info = {}  # the orientation alone travels on, for to_rgb to apply
        if orientation in range(2, 9):
            exif = Image.Exif()
            exif[ExifTags.Base.Orientation] = orientation
            reduced.info["exif"] = exif.tobytes()
        return to_rgb(reduced)
    except Exception as err:  # noqa: BLE001 - see _refuse
        _refuse(err, filename, limit)


def _check_size(size: tuple[int, int], filename: str, limit: int) -> tuple[int, int]:
    width, height = size
    if width * height > limit:
        raise HTTPException(413, f"{filename}: image too large ({width}x{height} = {width * height:,} "
                                 f"pixels; the limit is {limit:,} pixels per image)")
    if max(size) > MAX_ASPECT * max(1, min(size)):
        raise HTTPException(413, f"{filename}: image too elongated ({width}x{height}; the limit is an "
                                 f"aspect ratio of {MAX_ASPECT}:1)")
    return width, height


def _reduction(size: tuple[int, int], min_side: int) -> int:
    """Whole factor to shrink by: the shorter side stays >= min_side, the pixels <= ~4 min_side^2."""
    by_side = min(size) // min_side
    by_pixels = math.ceil(math.sqrt(size[0] * size[1] / (4 * min_side**2)))
    return max(1, by_side, by_pixels)


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """Box-average by `factor` in a mode where averaging commutes with to_rgb's conversion: grey
    levels rather than bits, palette colours rather than indices, alpha dropped (not premultiplied),
    16-bit grey widened to 32-bit. A mode that needs converting first goes a strip at a time, so
    that no second full-size image is made."""
    if image.mode in ("L", "RGB", "I", "F"):
        return image.reduce(factor)
    mode = "L" if image.mode in ("1", "LA") else "I" if image.mode.startswith("I;16") else "RGB"
    width, height = image.size
    out = Image.new(mode, (-(-width // factor), -(-height // factor)))
    rows = factor * max(1, 1_000_000 // (width * factor))  # about a million pixels a strip
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows))).convert(mode)
        out.paste(strip.reduce(factor), (0, top // factor))
    return out


def _refuse(err: Exception, filename: str, limit: int) -> NoReturn:
    """Raise the HTTPException for what Image.open or decoding raised."""
    if isinstance(err, HTTPException):
        raise err
    if isinstance(err, Image.DecompressionBombError):
        raise HTTPException(413, f"{filename}: image too large (over {2 * Image.MAX_IMAGE_PIXELS:,} pixels; "
                                 f"the limit is {limit:,} pixels per image)") from None
    if isinstance(err, Image.UnidentifiedImageError):
        reason = "unknown or unsupported format"
    else:  # anything Pillow cannot decode is not an image to us
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
    raise HTTPException(415, f"{filename}: not a readable image ({reason}); "
                             "send JPEG, PNG, WebP, BMP, GIF or TIFF files")


def _min_side(predictor: Any) -> int:
    """2.5 x the largest crop the predictor's preprocessing takes (probed on a 1x1 image): over
    twice the size it resizes to first, so decoding at reduced size barely changes its input."""
    probe = Image.new("RGB", (1, 1))
    crops = [int(t(probe).shape[-1]) for t in getattr(predictor, "transforms", ())]
    return math.ceil(2.5 * max(crops, default=448))


def create_app(run_dir: str | Path, max_bytes: int = DEFAULT_MAX_BYTES,
               max_images: int = DEFAULT_MAX_IMAGES, runtime: str = "torch",
               max_pixels: int | None = None, max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS,
               decoders: int = DEFAULT_DECODERS, label_info: str | Path | None = None) -> FastAPI:
    """The service for one run; its model is loaded here, once.

    `runtime`: "torch" (Predictor), "onnx" or "onnx-int8" (OnnxPredictor, exporting on first use).
    `max_pixels`: largest image accepted, from its header (default DEFAULT_MAX_PIXELS; at most
    Pillow's MAX_IMAGE_PIXELS). `max_request_pixels`: most pixels of all of a request's images.
    `decoders`: most requests decoding images (and holding them until inference) at once.
    `label_info`: a CSV `label,description` of descriptions shown on the page (label_info.py).
    """
    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    _check_limits(max_bytes, max_images, max_pixels, max_request_pixels, decoders)
    run = RunDir.open(run_dir)
    if label_info is not None:
        read_label_info(label_info)  # a malformed file is refused before the model loads
    predictor = load_predictor(run.path, runtime)
    names = list(predictor.label_names)
    descriptions = label_descriptions(names, label_info)
    thresholds = [float(t) for t in predictor.tuner.thresholds_]
    run_name = run.path.resolve().name
    min_side = _min_side(predictor)
    lock = threading.Lock()  # one inference at a time
    heat = HeatMaps(predictor, runtime, lock)
    slots = threading.BoundedSemaphore(decoders)  # requests decoding or holding decoded images
    # Decoding always on the same few threads: glibc keeps the memory a thread freed in that
    # thread's arena, so full-size decodes spread over the server's 40 worker threads stay
    # resident one per thread (12 decodes of a 50 MP RGBA PNG: 2 GB); here at most `decoders`.
    decode_pool = ThreadPoolExecutor(decoders, thread_name_prefix="fashionstyle-decode")

    def decode_all(data: list[bytes], filenames: list[str]) -> list[Image.Image | HTTPException]:
        """Each file decoded, or the HTTPException saying why it cannot be."""
        return [_or_error(decode_image, d, name, max_pixels, min_side) for d, name in zip(data, filenames)]

    app = FastAPIOffline(title="fashionstyle", version=_version(), static_url=DOCS_STATIC, redoc_url=None,
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
        page = resources.files("fashionstyle.serving").joinpath("static", "index.html").read_text(encoding="utf-8")
        return HTMLResponse(page)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "labels": len(names), "run": run_name, "runtime": runtime,
                "max_bytes": max_bytes, "max_images": max_images, "max_pixels": max_pixels,
                "max_request_pixels": max_request_pixels, "decoders": decoders, "maps": heat.available}

    @app.get("/labels")
    def labels() -> dict:
        return {"labels": [{"name": n, "threshold": t, "description": descriptions.get(n)}
                           for n, t in zip(names, thresholds)],
                "beta": float(predictor.tuner.beta)}

    @app.post("/predict", response_model=None)
    def predict(files: list[UploadFile] | None = File(None, description="one or more images"),
                maps: bool = Query(False, description="also a heat-map overlay per predicted style "
                                                      "(a backward pass each; torch runtime only)")
                ) -> dict | JSONResponse:
        files = [f for f in files or [] if f is not None]
        if not files:
            raise HTTPException(400, "no images: send one or more files under the form field `files`")
        explain = heat.explainer() if maps else None
        if len(files) > max_images:
            raise HTTPException(413, f"too many images: {len(files)} (at most {max_images} per request)")
        filenames = [f.filename or f"file {i + 1}" for i, f in enumerate(files)]
        data = [f.file.read() for f in files]
        total, errors = _read_headers(data, filenames, max_pixels)
        if total > max_request_pixels:
            raise HTTPException(413, f"images too large in all: {total:,} pixels in {len(files) - len(errors)} "
                                     f"images (the limit is {max_request_pixels:,} pixels per request); send "
                                     "fewer or smaller images")
        good = [i for i in range(len(files)) if i not in errors]
        with slots:
            decoded = decode_pool.submit(decode_all, [data[i] for i in good], [filenames[i] for i in good]).result()
            del data
            images: dict[int, Image.Image] = {}
            for i, image in zip(good, decoded):
                if isinstance(image, HTTPException):
                    errors[i] = image
                else:
                    images[i] = image
            del decoded
            if not images:
                return _all_failed(filenames, errors)
            good = list(images)
            start = time.perf_counter()
            with lock:
                probs = predictor.predict_proba_images(list(images.values()))  # (N, L)
                chosen = predictor.decided_names(probs)
                overlays = [heat.overlays(explain, images[i], shown) for i, shown in zip(good, chosen)] if maps else []
            elapsed = time.perf_counter() - start
            del images
        results = []
        for k, (i, p) in enumerate(zip(good, probs)):
            results.append({"index": i, "filename": filenames[i], "labels": chosen[k],
                            "probs": {n: float(v) for n, v in zip(names, p)},
                            "thresholds": dict(zip(names, thresholds))})
            if maps:
                results[-1]["maps"] = overlays[k]
        return {"run": run_name, "results": results, "errors": _error_entries(filenames, errors),
                "inference_ms": round(elapsed * 1000, 2)}

    return app


def _read_headers(data: list[bytes], filenames: list[str], max_pixels: int) -> tuple[int, dict[int, HTTPException]]:
    """The pixels of the readable images in all (from their headers), and each other file's error by index."""
    total, errors = 0, {}
    for i, (d, name) in enumerate(zip(data, filenames)):
        size = _or_error(image_size, d, name, max_pixels)
        if isinstance(size, HTTPException):
            errors[i] = size
        else:
            total += size[0] * size[1]
    return total, errors


def _or_error(read: Any, *args: Any) -> Any:
    """read(*args), or the HTTPException it raised: one file's problem, answered beside the others' results."""
    try:
        return read(*args)
    except HTTPException as err:
        return err


def _error_entries(filenames: list[str], errors: dict[int, HTTPException]) -> list[dict]:
    return [{"index": i, "filename": filenames[i], "status": errors[i].status_code, "detail": errors[i].detail}
            for i in sorted(errors)]


def _all_failed(filenames: list[str], errors: dict[int, HTTPException]) -> JSONResponse:
    """No file could be read: the first file's status (415 not an image, 413 too large), every file's error."""
    entries = _error_entries(filenames, errors)
    return JSONResponse({"detail": "; ".join(e["detail"] for e in entries), "errors": entries},
                        status_code=entries[0]["status"])


def _check_limits(max_bytes: int, max_images: int, max_pixels: int, max_request_pixels: int,
                  decoders: int) -> None:
    if min(max_bytes, max_images, max_pixels, max_request_pixels, decoders) < 1:
        raise FashionStyleError("max_bytes, max_images, max_pixels, max_request_pixels and decoders must be "
                                f"positive, got {max_bytes}, {max_images}, {max_pixels}, {max_request_pixels}, "
                                f"{decoders}")
    if max_pixels > Image.MAX_IMAGE_PIXELS:
        raise FashionStyleError(f"max_pixels {max_pixels:,} is over Pillow's decompression-bomb limit "
                                f"({Image.MAX_IMAGE_PIXELS:,})")


class HeatMaps:
    """The service's Grad-CAM overlays (`?maps=true`): the explainer is built on first use, under the model lock."""

    def __init__(self, predictor: Any, runtime: str, lock: threading.Lock):
        self.predictor, self.runtime, self.lock = predictor, runtime, lock
        self.available = runtime == "torch" and importlib.util.find_spec("captum") is not None
        self._explainer: Any = None

    def explainer(self) -> Any:
        """The Explainer, or an HTTP error saying what the service lacks for maps."""
        if self.runtime != "torch":
            raise HTTPException(400, f"heat maps (maps=true) need the PyTorch runtime; this service runs "
                                     f"on {self.runtime} (serve with --runtime torch, or ask without maps)")
        with self.lock:  # no other request runs the model while the target layer is found by a pass
            if self._explainer is None:
                try:
                    from fashionstyle.analysis.explain import Explainer

                    self._explainer = Explainer(self.predictor)  # imports captum
                except ModuleNotFoundError as err:
                    raise HTTPException(501, f"heat maps need {err.name}, which is not installed; "
                                             "pip install 'fashionstyle[explain]'") from None
        return self._explainer

    @staticmethod
    def overlays(explainer: Any, image: Image.Image, labels: list[str]) -> dict[str, str]:
        """A data-URL PNG per label: the crop the model sees with the label's Grad-CAM map blended in."""
        from fashionstyle.analysis.explain import overlay

        photo = explainer.photo(image)
        out = {}
        for label, cam in explainer.maps(image, labels).items():
            buffer = io.BytesIO()
            overlay(photo, cam).save(buffer, format="PNG")
            out[label] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        return out


class HeaderTimeout:
    """Mixin for uvicorn's HTTP protocol classes: close a connection whose request line and headers have
    not all arrived `header_timeout` seconds after it opened or after its previous response ended.

    uvicorn times out idle keep-alive connections only until their first byte, so a client that
    trickles a header (one byte a second) would otherwise hold its connection for as long as it likes.
    Headers are complete when the protocol starts a new request cycle (`self.cycle`).
    """

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    _header_timer: Any = None
    _header_cycle: Any = None  # the cycle current while waiting for the next request's headers

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not self._header_cycle:  # type: ignore[attr-defined]
            self._disarm_header_timer()  # the headers are in

    def on_response_complete(self) -> None:
        finished = self.cycle  # type: ignore[attr-defined]
        super().on_response_complete()  # type: ignore[misc]
        if self.cycle is finished and not self.transport.is_closing():  # type: ignore[attr-defined]
            self._arm_header_timer()  # no pipelined request started: wait for the next one's headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_cycle = self.cycle  # type: ignore[attr-defined]
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)  # type: ignore[attr-defined]

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is self._header_cycle and not self.transport.is_closing():  # type: ignore[attr-defined]
            self.transport.close()  # type: ignore[attr-defined]


def header_timeout_protocol(seconds: float = DEFAULT_HEADER_TIMEOUT) -> type:
    """uvicorn's HTTP protocol (as `http="auto"` picks it) with HeaderTimeout, for uvicorn's `http=`."""
    if not seconds > 0:
        raise FashionStyleError(f"header timeout must be positive, got {seconds}")
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return type("HeaderTimeoutProtocol", (HeaderTimeout, AutoHTTPProtocol), {"header_timeout": float(seconds)})


def _version() -> str:
    from fashionstyle.core.version import __version__

    return __version__


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          header_timeout: float = DEFAULT_HEADER_TIMEOUT, **limits: Any) -> None:
    """Run the service with uvicorn until interrupted (one process; the model is loaded once).

    `header_timeout`: seconds a connection may take to send a request's line and headers (HeaderTimeout).
    """
    import uvicorn

    protocol = header_timeout_protocol(header_timeout)
    app = create_app(run_dir, **limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=protocol)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m fashionstyle.serving.app RUN [--host H] [--port P] ...`"""
    parser = argparse.ArgumentParser(prog="python -m fashionstyle.serving.app", description=__doc__.splitlines()[0],
                                     epilog="example:\n  python -m fashionstyle.serving.app runs/lite0 --port 8000",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--max-images", type=int, default=DEFAULT_MAX_IMAGES)
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="largest image, in pixels")
    parser.add_argument("--max-request-pixels", type=int, default=DEFAULT_MAX_REQUEST_PIXELS,
                        help="most pixels of all of one request's images")
    parser.add_argument("--decoders", type=int, default=DEFAULT_DECODERS,
                        help="most requests decoding images at once (bounds memory)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch")
    parser.add_argument("--header-timeout", type=float, default=DEFAULT_HEADER_TIMEOUT,
                        help="seconds a connection may take to send a request's headers")
    parser.add_argument("--label-info", default=None, help="CSV label,description: shown on hover in the page")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    try:
        serve(args.run, args.host, args.port, log_level=args.log_level, header_timeout=args.header_timeout,
              max_bytes=args.max_bytes, max_images=args.max_images, runtime=args.runtime,
              max_pixels=args.max_pixels, max_request_pixels=args.max_request_pixels, decoders=args.decoders,
              label_info=args.label_info)
    except FashionStyleError as err:
        print(f"fashionstyle serve: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
