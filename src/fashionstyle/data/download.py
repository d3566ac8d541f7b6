"""Download the contest images listed in JD-format label files.

A label file has one image a line: ``id,url,l1,...,l13`` (train) or
``id,url`` (test); the url is everything between the id and the trailing
0/1 labels, commas included. :func:`read_url_list` reads and checks the
(id, url) pairs; :func:`download_images` fetches them in parallel to
``out_dir/<id>.jpg`` with retries and backoff (honouring ``Retry-After`` as
seconds or as an HTTP date), follows redirects to http(s) URLs only, keeps a
JPEG up to its end-of-image marker and a PNG up to its IEND chunk (not the
junk after them), verifies every body decodes as an image, writes atomically
and resumes an interrupted run; :func:`format_summary` gives the closing line.
"""
from __future__ import annotations

import csv
import datetime
import email.utils
import functools
import http.client
import io
import os
import random
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from fashionstyle.core import atomic
from fashionstyle.core.errors import FashionStyleError

MAX_PIXELS = 89_478_485  # Pillow's default decompression-bomb limit
MAX_BYTES = 64 * 1024 * 1024  # a larger body is refused, not read
MAX_DELAY = 30.0  # cap on one backoff sleep, seconds
FAILURES_CSV = "download_failures.csv"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
USER_AGENT = "fashionstyle-downloader/1.0"

Failure = tuple[str, str, str]  # (id, url, reason)

# warnings.catch_warnings changes process-wide state: one thread at a time.
_OPEN_LOCK = threading.Lock()


@dataclass
class DownloadSummary:
    """Counts of one run; ``failures`` holds (id, url, reason) in input order."""

    fetched: int = 0
    already_there: int = 0
    failed: int = 0
    failures: list[Failure] = field(default_factory=list)
    out_dir: Path | None = None


class _Failed(Exception):
    """One attempt failed: why, whether to retry, and a server-asked wait."""

    def __init__(self, reason: str, retry: bool, wait: float = 0.0) -> None:
        super().__init__(reason)
        self.reason, self.retry, self.wait = reason, retry, wait


def read_url_list(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Read the (id, url) pairs of a JD-format label file, checking each line.

    Blank lines are skipped; a UTF-8 BOM and CRLF line ends are accepted.
    A malformed line raises FashionStyleError naming ``file:line``.
    """
    name = os.fspath(path)
    items: list[tuple[str, str]] = []
    first_line: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    fields = _id_and_url(line)
                except csv.Error as e:
                    raise FashionStyleError(f"{name}:{lineno}: not a valid CSV line ({e})") from None
                problem = _line_problem(fields, first_line)
                if problem:
                    raise FashionStyleError(f"{name}:{lineno}: {problem}")
                first_line[fields[0]] = lineno
                items.append((fields[0], fields[1]))
    except FileNotFoundError:
        raise FashionStyleError(f"{name}: no such file") from None
    except UnicodeDecodeError as e:
        raise FashionStyleError(f"{name}: not UTF-8 text ({e.reason})") from None
    return items


def _id_and_url(line: str) -> list[str]:
    """[id, url] of one list line (or its one field): the url is everything between the first comma
    and the trailing 0/1 label fields, so a url that holds a comma stays whole (quoted or not)."""
    fields = next(csv.reader([line.strip()]), [])
    if len(fields) < 2:
        return [f.strip() for f in fields]
    labels = 0  # trailing 0/1 fields after the id and the url's first piece
    while labels < len(fields) - 2 and fields[-1 - labels].strip() in ("0", "1"):
        labels += 1
    return [fields[0].strip(), ",".join(fields[1:len(fields) - labels]).strip()]


def _line_problem(fields: list[str], first_line: dict[str, int]) -> str | None:
    """What is wrong with one split label line, or None."""
    if len(fields) < 2:
        plural = "" if len(fields) == 1 else "s"
        return f"expected id,url,...; got {len(fields)} field{plural}"
    id_, url = fields[0], fields[1]
    if id_ in first_line:
        return f"duplicate id {id_!r} (first on line {first_line[id_]})"
    return _item_problem(id_, url)


def _item_problem(id_: str, url: str) -> str | None:
    """What makes (id, url) unusable, or None."""
    if not id_:
        return "empty id"
    if id_ in (".", "..") or any(c in id_ for c in "/\\\0"):
        return f"id {id_!r} cannot be used as a file name"
    if not url.lower().startswith(("http://", "https://")):
        return f"url must start with http:// or https://; got {url!r}"
    return None


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
        problem = f"duplicate id {id_!r}" if id_ in seen else _item_problem(id_, url)
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
            if _image_problem(dest.read_bytes()) is None:
                return "already_there", None
            dest.unlink()  # corrupt: never leave it behind, fetch again
        data = _fetch_with_retries(url, retries, timeout, backoff, stop)
        atomic.write_atomic(dest, lambda f: f.write(data))
        return "fetched", None
    except _Failed as e:
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
            data = without_trailing_data(_fetch(url, timeout))
            problem = _image_problem(data)
            if problem is None:
                return data
            bad_bodies += 1  # a CDN hiccup gets one more try, no more
            raise _Failed(problem, problem == "not an image" and bad_bodies < 2)
        except _Failed as e:
            if not e.retry or attempt == retries:
                raise
            delay = min(backoff * 2**attempt, MAX_DELAY) + random.uniform(0, backoff / 4)
            if stop.wait(max(delay, e.wait)):
                raise _Failed(f"interrupted after: {e.reason}", False) from None
    raise AssertionError("unreachable")


class _Deadline:
    """The end of one attempt: every socket opened under it is shut down when the time is up,
    which ends any read or write blocked on it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._end = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []  # duplicates: shutting one down ends the connection
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self, timeout: float) -> float:
        """``timeout`` or the time left, whichever is shorter; TimeoutError when none is left."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return min(timeout, left) if isinstance(timeout, (int, float)) else left

    def watch(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock.dup())  # outlives a TLS wrap, which detaches ``sock``
            if self.expired:
                _shut(self._sockets[-1])
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the peer
        pass


def _connection(cls: type[http.client.HTTPConnection], deadline: _Deadline, *args, **kwargs):
    """An HTTP(S) connection whose sockets connect within, and are watched by, ``deadline``."""
    conn = cls(*args, **kwargs)
    create = conn._create_connection
    conn._create_connection = lambda address, timeout, *rest: deadline.watch(
        create(address, deadline.left(timeout), *rest))
    return conn


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_connection, http.client.HTTPConnection, self.deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_connection, http.client.HTTPSConnection, self.deadline), req,
                            context=self._context)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only, as the list itself allows (urllib would follow ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            fp.close()
            raise _Failed(f"redirected to {newurl!r}; only http:// and https:// are followed", False)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, timeout: float) -> bytes:
    """One GET of ``url`` within ``timeout`` seconds in all; raise _Failed saying why and whether to retry."""
    deadline = _Deadline(timeout)
    try:
        data = _get(url, timeout, deadline)
    except _Failed:
        if not deadline.expired:
            raise
    finally:
        deadline.close()
    if deadline.expired:  # a cut-off read may also look like a short body, or none
        raise _Failed(f"timed out (no whole file within {timeout:g} s)", True)
    return data


def _get(url: str, timeout: float, deadline: _Deadline) -> bytes:
    """_fetch's request and error translation."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline), _RedirectHandler())
    try:
        with opener.open(request, timeout=timeout) as response:
            return _read_body(response)
    except urllib.error.HTTPError as e:
        e.close()
        retry = e.code >= 500 or e.code == 429
        raise _Failed(f"HTTP {e.code} {e.reason}".strip(), retry, _retry_after(e.headers)) from None
    except urllib.error.URLError as e:
        reason = e.reason if isinstance(e.reason, BaseException) else OSError(e.reason)
        raise _Failed(_os_reason(reason), not isinstance(reason, ssl.SSLCertVerificationError)) from None
    except http.client.IncompleteRead as e:
        raise _Failed(f"truncated body (got {len(e.partial)} bytes)", True) from None
    except http.client.InvalidURL as e:
        raise _Failed(f"invalid url ({e})", False) from None
    except (OSError, http.client.HTTPException) as e:
        raise _Failed(_os_reason(e), True) from None


def _read_body(response: http.client.HTTPResponse) -> bytes:
    """Read a whole body, refusing huge ones and detecting truncation."""
    length = (response.headers.get("Content-Length") or "").strip()
    expected = int(length) if length.isdigit() else None
    if expected is not None and expected > MAX_BYTES:
        raise _Failed(f"file too large ({expected} bytes)", False)
    data = response.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _Failed(f"file too large (over {MAX_BYTES} bytes)", False)
    if expected is not None and len(data) < expected:
        raise _Failed(f"truncated body (got {len(data)} of {expected} bytes)", True)
    return data


def _retry_after(headers: Message | None) -> float:
    """Seconds a Retry-After header asks for, as seconds or as an HTTP date (capped at MAX_DELAY), else 0."""
    value = (headers.get("Retry-After") or "").strip() if headers is not None else ""
    if value.isdigit():
        return min(float(value), MAX_DELAY)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # absent or not a date
        return 0.0
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=datetime.timezone.utc)
    wait = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    return min(max(wait, 0.0), MAX_DELAY)


def _os_reason(err: BaseException) -> str:
    """A short reason for a network-level error."""
    if isinstance(err, TimeoutError):
        return "timed out"
    return f"connection error ({type(err).__name__}: {err})"


def without_trailing_data(data: bytes) -> bytes:
    """A JPEG up to its end-of-image marker, a PNG up to its IEND chunk: what follows (junk that
    decoders ignore, however large) is not kept. Other formats, and files whose end is not found, as given."""
    if data.startswith(b"\xff\xd8"):
        end = _jpeg_end(data)
    elif data.startswith(PNG_SIGNATURE):
        end = _png_end(data)
    else:
        end = None
    return data[:end] if end else data


def _jpeg_end(data: bytes) -> int | None:
    """The offset just after a JPEG's EOI marker, found by walking its segments and scans; None if absent."""
    i, n = 2, len(data)
    while i + 2 <= n:
        if data[i] != 0xFF:
            return None  # not at a marker: not a JPEG we can walk
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif marker == 0xD9:  # EOI
            return i + 2
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")  # the segment's length counts its own 2 bytes
            if marker == 0xDA:  # SOS: entropy-coded data up to the next marker
                i = _scan_end(data, i)
    return None


def _scan_end(data: bytes, i: int) -> int:
    """The offset of the marker ending the entropy-coded data that starts at `i` (len(data) if none)."""
    while (j := data.find(b"\xff", i)) >= 0 and j + 1 < len(data):
        following = data[j + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:  # a stuffed 0xFF byte or a restart marker
            i = j + 2
        elif following == 0xFF:  # fill bytes
            i = j + 1
        else:
            return j
    return len(data)


def _png_end(data: bytes) -> int | None:
    """The offset just after a PNG's IEND chunk; None if absent."""
    i = len(PNG_SIGNATURE)
    while i + 8 <= len(data):
        length, kind = int.from_bytes(data[i:i + 4], "big"), data[i + 4:i + 8]
        i += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return i if i <= len(data) else None
    return None


def _image_problem(data: bytes) -> str | None:
    """None if ``data`` fully decodes as an image, else 'not an image' or
    'image too large' (over MAX_PIXELS: a decompression bomb)."""
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            if image.width * image.height > MAX_PIXELS:
                return "image too large"
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "image too large"
    except Exception:  # Pillow raises many types on bad data
        return "not an image"
    return None


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
