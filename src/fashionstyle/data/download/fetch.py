"""Download the contest images listed in JD-format label files.

A label file has one image a line: ``id,url,l1,...,l13`` (train) or
``id,url`` (test); the url is everything between the id and the trailing
0/1 labels, commas included. url_list.read_url_list reads and checks the
(id, url) pairs; :func:`download_images` fetches them in parallel to
``out_dir/<id>.jpg`` with retries and backoff (honouring ``Retry-After`` as
seconds or as an HTTP date), follows redirects to http(s) URLs only, keeps a
JPEG up to its end-of-image marker and a PNG up to its IEND chunk (not the
junk after them), verifies every body decodes as an image, writes atomically
and resumes an interrupted run; :func:`format_summary` gives the closing line.
"""
from __future__ import annotations

import csv
import io
import os
import random
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError
from fashionstyle.data.download.http_get import MAX_DELAY, FetchFailed, fetch
from fashionstyle.data.download.image_bytes import image_problem, without_trailing_data
from fashionstyle.data.download.url_list import item_problem

FAILURES_CSV = "download_failures.csv"

Failure = tuple[str, str, str]  # (id, url, reason)


@dataclass
class DownloadSummary:
    """Counts of one run; ``failures`` holds (id, url, reason) in input order."""

    fetched: int = 0
    already_there: int = 0
    failed: int = 0
    failures: list[Failure] = field(default_factory=list)
    out_dir: Path | None = None


def download_images(
    items: Iterable[tuple[str, str]],
    out_dir: str | os.PathLike[str],
    workers: int = 16,
    retries: int = 4,
    timeout: float = 10.0,
    backoff: float = 0.5,
    progress: bool = True,
) -> DownloadSummary:
    """Fetch each (id, url) to ``out_dir/<id>.jpg``; return the counts.

    Transient failures (5xx, 429, connection errors, time-outs, truncated
    bodies) are retried ``retries`` times with exponential backoff; 4xx are
    not. A body is kept only if Pillow decodes it. Images already there and
    decodable are skipped. Failures go to ``out_dir/download_failures.csv``.

    ``timeout`` is the deadline, in seconds, of one attempt at one file:
    connecting, sending the request and reading the headers and the whole
    body together (the DNS look-up aside). A server that stalls or trickles
    its bytes is cut off when it passes, and the attempt is retried like any
    time-out, so one file takes at most ``(retries + 1) * timeout`` seconds
    plus the backoff sleeps.
    """
    items = list(items)
    _check_args(items, workers, retries, timeout, backoff)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise FashionStyleError(f"{out}: not a directory") from None
    for part in out.glob(".*.part"):
        part.unlink(missing_ok=True)

    results: list[tuple[str, str | None]] = [("failed", "not run")] * len(items)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))))
    try:
        futures = {
            pool.submit(_one, id_, url, out, retries, timeout, backoff, stop): i
            for i, (id_, url) in enumerate(items)
        }
        with tqdm(total=len(items), disable=not progress, unit="img", desc="download") as bar:
            n_failed = 0
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                n_failed += results[futures[fut]][0] == "failed"
                bar.set_postfix(failed=n_failed, refresh=False)
                bar.update(1)
    finally:  # on Ctrl-C: cancel what has not started, let the rest finish
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)

    summary = _summarize(items, results, out)
    _write_failures(out, summary.failures)
    return summary


def _check_args(
    items: list[tuple[str, str]], workers: int, retries: int, timeout: float, backoff: float
) -> None:
    """Raise FashionStyleError on bad settings or unusable/duplicate items."""
    for name, value, ok, rule in (
        ("workers", workers, workers >= 1, ">= 1"),
        ("retries", retries, retries >= 0, ">= 0"),
        ("timeout", timeout, timeout > 0, "> 0"),
        ("backoff", backoff, backoff >= 0, ">= 0"),
    ):
        if not ok:
            raise FashionStyleError(f"{name} must be {rule}; got {value}")
    seen: set[str] = set()
    for i, (id_, url) in enumerate(items, start=1):
        problem = f"duplicate id {id_!r}" if id_ in seen else item_problem(id_, url)
        if problem:
            raise FashionStyleError(f"download item {i}: {problem}")
        seen.add(id_)


def _summarize(
    items: list[tuple[str, str]], results: list[tuple[str, str | None]], out: Path
) -> DownloadSummary:
    """Fold per-item (status, reason) results into a DownloadSummary."""
    summary = DownloadSummary(out_dir=out)
    for (id_, url), (status, reason) in zip(items, results):
        if status == "fetched":
            summary.fetched += 1
        elif status == "already_there":
            summary.already_there += 1
        else:
            summary.failures.append((id_, url, reason or "unknown"))
    summary.failed = len(summary.failures)
    return summary


def _one(
    id_: str, url: str, out: Path, retries: int, timeout: float, backoff: float,
    stop: threading.Event,
) -> tuple[str, str | None]:
    """Get one image unless a good copy is there: (status, failure reason)."""
    dest = out / f"{id_}.jpg"
    try:
        if dest.exists():
            if image_problem(dest.read_bytes()) is None:
                return "already_there", None
            dest.unlink()  # corrupt: never leave it behind, fetch again
        data = _fetch_with_retries(url, retries, timeout, backoff, stop)
        atomic.write_atomic(dest, lambda f: f.write(data))
        return "fetched", None
    except FetchFailed as e:
        return "failed", e.reason
    except Exception as e:  # one odd item must not end the whole run
        return "failed", f"{type(e).__name__}: {e}"


def _fetch_with_retries(
    url: str, retries: int, timeout: float, backoff: float, stop: threading.Event
) -> bytes:
    """Fetch ``url`` and verify it is an image, retrying transient failures."""
    bad_bodies = 0
    for attempt in range(retries + 1):
        try:
            data = without_trailing_data(fetch(url, timeout))
            problem = image_problem(data)
            if problem is None:
                return data
            bad_bodies += 1  # a CDN hiccup gets one more try, no more
            raise FetchFailed(problem, problem == "not an image" and bad_bodies < 2)
        except FetchFailed as e:
            if not e.retry or attempt == retries:
                raise
            delay = min(backoff * 2**attempt, MAX_DELAY) + random.uniform(0, backoff / 4)
            if stop.wait(max(delay, e.wait)):
                raise FetchFailed(f"interrupted after: {e.reason}", False) from None
    raise AssertionError("unreachable")


def _write_failures(out: Path, failures: list[Failure]) -> None:
    """Write ``download_failures.csv`` (id,url,reason), or remove a stale one."""
    path = out / FAILURES_CSV
    if not failures:
        path.unlink(missing_ok=True)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("id", "url", "reason"))
    writer.writerows(failures)
    atomic.write_text(path, buffer.getvalue())


def format_summary(summary: DownloadSummary) -> str:
    """One closing line: counts, and where the failures are listed."""
    line = (
        f"fetched {summary.fetched}, already there {summary.already_there}, "
        f"failed {summary.failed}"
    )
    if summary.failed and summary.out_dir is not None:
        line += f" (see {summary.out_dir / FAILURES_CSV})"
    return line
