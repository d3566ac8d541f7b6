"""POST /predict: uploaded files -> one prediction record each (core.prediction), in upload order.

    predictions = Predictions(predictor, run_name, limits, runtime)    # once, at start
    answer = predictions.answer(files, maps=False)                     # dict (200) or JSONResponse
    answer = predictions.answer_data(names, data)                      # the same for bytes in memory

Before anything is decoded, a request is refused (413) with more than `max_images` files or more
than `max_request_pixels` in its readable images (read from their headers); a file over
`max_pixels`, too elongated or not an image is that file's record, with `error` set. At most
`decoders` requests decode and hold their views at once, each on one of `decoders` threads, one
image at a time. When no file is usable the answer's status is the first file's (413 or 415), with
`detail` joining every file's error beside the records. Inference is serialised by a lock.
"""
from __future__ import annotations

import ctypes
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence
from typing import Callable

from fastapi import HTTPException, UploadFile
from fastapi.responses import JSONResponse

from fashionstyle.analysis.heat_maps import HeatMaps, HeatMapsUnavailable
from fashionstyle.core.decision import OperatingPoint
from fashionstyle.core.prediction import Prediction, make_predictions, thresholds_by_label
from fashionstyle.serving.limits import ServiceLimits
from fashionstyle.serving.uploads import Prepared, Refusal, header_pixels, prepare


class Predictions:
    """The /predict handler of one loaded predictor."""

    def __init__(self, predictor: Any, run_name: str, limits: ServiceLimits, runtime: str,
                 points: dict[str, OperatingPoint] | None = None):
        self.predictor, self.run_name, self.limits = predictor, run_name, limits
        self.names = list(predictor.label_names)
        self.points = {**(points or {}), predictor.decision.name: predictor.decision}  # those a request may name
        self.thresholds = thresholds_by_label(self.names, predictor.thresholds)
        self.lock = threading.Lock()  # one inference at a time
        self.heat = HeatMaps(predictor, runtime, self.lock)
        self.slots = threading.BoundedSemaphore(limits.decoders)  # requests decoding or holding views
        # Decoding always on the same few threads: glibc keeps the memory a thread freed in that
        # thread's arena, so full-size decodes spread over the server's 40 worker threads stay
        # resident one per thread; here at most `decoders`.
        self.pool = ThreadPoolExecutor(limits.decoders, thread_name_prefix="fashionstyle-decode")

    def answer(self, files: Sequence[UploadFile | None] | None, maps: bool,
               point_name: str | None = None) -> dict | JSONResponse:
        files = [f for f in files or [] if f is not None]
        point = self.point(point_name)
        if not files:
            raise HTTPException(400, "no images: send one or more files under the form field `files`")
        explainer = self._explainer() if maps else None
        if len(files) > self.limits.max_images:
            raise HTTPException(413, f"too many images: {len(files)} (at most {self.limits.max_images} "
                                     "per request)")
        names = [f.filename or f"file {i + 1}" for i, f in enumerate(files)]
        return self.answer_data(names, [f.file.read() for f in files], explainer, point)

    def point(self, name: str | None) -> OperatingPoint:
        """The operating point a request names (None: the service's); unknown: 400 listing the run's."""
        if name is None:
            return self.predictor.decision
        if name not in self.points:
            raise HTTPException(400, f"no operating point {name!r}; this run's: {', '.join(self.points)}")
        return self.points[name]

    def answer_data(self, names: list[str], data: list[bytes], explainer: Any = None,
                    point: OperatingPoint | None = None) -> dict | JSONResponse:
        """The answer for images already in memory (uploads, or the Label Studio backend's task photos)."""
        point = point or self.predictor.decision
        total, refused = header_pixels(data, names, self.limits.max_pixels)
        if total > self.limits.max_request_pixels:
            n = len(names) - len(refused)
            raise HTTPException(413, f"images too large in all: {total:,} pixels in {n} {plural(n, 'image')} "
                                     f"(the limit is {self.limits.max_request_pixels:,} pixels per request); "
                                     "send fewer or smaller images")
        with self.slots:
            todo = [i for i in range(len(names)) if i not in refused]
            done = self.pool.submit(self._prepare_all, [data[i] for i in todo], [names[i] for i in todo],
                                    explainer).result()
            del data
            release_after(total)  # the decoded photos are gone: their pages back to the system
            outcome: dict[int, Prepared | Refusal] = {**refused, **dict(zip(todo, done))}
            del done
            return self._records(names, outcome, explainer, point)

    def _explainer(self) -> Any:
        try:
            return self.heat.explainer()
        except HeatMapsUnavailable as err:
            raise HTTPException(501 if err.missing else 400, str(err)) from None

    def _prepare_all(self, data: list[bytes], names: list[str], explainer: Any) -> list[Prepared | Refusal]:
        return [prepare(d, name, self.predictor, explainer) for d, name in zip(data, names)]

    def _records(self, names: list[str], outcome: dict[int, Prepared | Refusal], explainer: Any,
                 point: OperatingPoint) -> dict | JSONResponse:
        """The answer: a record per file in upload order (inference on the readable ones)."""
        ready = {i: p for i, p in outcome.items() if isinstance(p, Prepared)}
        records: dict[int, dict] = {i: Prediction.failed(names[i], p.message).as_dict()
                                    for i, p in outcome.items() if isinstance(p, Refusal)}
        start = time.perf_counter()
        if ready:
            with self.lock:
                probs = self.predictor.predict_proba_views([p.views for p in ready.values()])  # (N, L)
                decided = point.decide(probs)
                made = make_predictions([names[i] for i in ready], probs, decided, self.names)
                for (i, prepared), record in zip(ready.items(), made):
                    records[i] = record.as_dict()
                    if explainer is not None:
                        records[i]["maps"] = self.heat.overlays(explainer, prepared.maps, record.labels)
        body = {"run": self.run_name, "label_names": self.names, "operating_point": point.name,
                "thresholds": thresholds_by_label(self.names, point.thresholds),
                "predictions": [records[i] for i in range(len(names))],
                "inference_ms": round((time.perf_counter() - start) * 1000, 2)}
        if ready:
            return body
        first = outcome[0]
        assert isinstance(first, Refusal)
        return JSONResponse({"detail": "; ".join(f"{r['image']}: {r['error']}" for r in body["predictions"]), **body},
                            status_code=first.status)


def plural(n: int, word: str) -> str:
    """`word` for one, `word`s for any other count."""
    return word if n == 1 else word + "s"


# Memory back to the system after a request that decoded large images.
#
# glibc keeps what a thread freed in its arena, in pieces too scattered to shrink the heap, and raises
# its threshold for mapping large blocks apart after the first is freed: after one request of 50 MP
# PNGs the service stayed hundreds of MB above idle, and the next such request needed more on top.
# `malloc_trim(0)` hands the free pages of every arena back. It costs a walk of the arenas, so it runs
# only after requests over TRIM_ABOVE pixels; elsewhere (no glibc) it does nothing.
TRIM_ABOVE = 4_000_000  # pixels a request decoded in all


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # the C library the process runs on
    except OSError:
        return None


_TRIM = _malloc_trim()


def release_after(pixels: int) -> bool:
    """Give freed memory back after a request that decoded `pixels` in all; whether it was tried."""
    if _TRIM is None or pixels <= TRIM_ABOVE:
        return False
    _TRIM(0)
    return True
