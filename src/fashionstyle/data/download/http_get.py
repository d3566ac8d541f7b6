"""One HTTP(S) GET within a deadline for the whole attempt, for the image downloader.

    data = fetch("https://host/a.jpg", timeout=10.0)   # or raise FetchFailed(reason, retry, wait)
    data = fetch(url, 20.0, headers={"Authorization": "Token ..."}, max_bytes=10_000_000, redirects=False)

The deadline covers connecting, sending, the headers and the whole body (the DNS
look-up aside): a server that stalls or trickles its bytes is cut off when it
passes. Redirects are followed to http(s) URLs only, or not at all (`redirects=False`: a request
carrying a credential, which must reach no other host); bodies over `max_bytes` are refused;
``Retry-After`` (seconds or an HTTP date) is read for the retry wait.
"""
from __future__ import annotations

import datetime
import email.utils
import functools
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message
from typing import Mapping

MAX_BYTES = 64 * 1024 * 1024  # a larger body is refused, not read
MAX_DELAY = 30.0  # cap on one backoff sleep, seconds
USER_AGENT = "fashionstyle-downloader/1.0"


class FetchFailed(Exception):
    """One attempt failed: why, whether to retry, and a server-asked wait."""

    def __init__(self, reason: str, retry: bool, wait: float = 0.0) -> None:
        super().__init__(reason)
        self.reason, self.retry, self.wait = reason, retry, wait


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
    """Follow redirects to http(s) URLs only, as the list itself allows (urllib would follow ftp://),
    or none (`follow=False`)."""

    def __init__(self, follow: bool = True) -> None:
        super().__init__()
        self.follow = follow

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if not self.follow or scheme not in ("http", "https"):
            fp.close()
            if not self.follow:
                raise FetchFailed(f"redirected ({code}); redirects are not followed", False)
            raise FetchFailed(f"redirected to {newurl!r}; only http:// and https:// are followed", False)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, timeout: float, headers: Mapping[str, str] | None = None, max_bytes: int = MAX_BYTES,
          redirects: bool = True) -> bytes:
    """One GET of ``url`` within ``timeout`` seconds in all; raise FetchFailed saying why and whether to retry."""
    deadline = _Deadline(timeout)
    try:
        data = _get(urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})}),
                    timeout, deadline, max_bytes, redirects)
    except FetchFailed:
        if not deadline.expired:
            raise
    finally:
        deadline.close()
    if deadline.expired:  # a cut-off read may also look like a short body, or none
        raise FetchFailed(f"timed out (no whole file within {timeout:g} s)", True)
    return data


def _get(request: urllib.request.Request, timeout: float, deadline: _Deadline, max_bytes: int,
         redirects: bool) -> bytes:
    """fetch's request and error translation."""
    opener = urllib.request.build_opener(_HTTPHandler(deadline), _HTTPSHandler(deadline),
                                         _RedirectHandler(redirects))
    try:
        with opener.open(request, timeout=timeout) as response:
            return _read_body(response, max_bytes)
    except urllib.error.HTTPError as e:
        e.close()
        retry = e.code >= 500 or e.code == 429
        raise FetchFailed(f"HTTP {e.code} {e.reason}".strip(), retry, retry_after(e.headers)) from None
    except urllib.error.URLError as e:
        reason = e.reason if isinstance(e.reason, BaseException) else OSError(e.reason)
        raise FetchFailed(_os_reason(reason), not isinstance(reason, ssl.SSLCertVerificationError)) from None
    except http.client.IncompleteRead as e:
        raise FetchFailed(f"truncated body (got {len(e.partial)} bytes)", True) from None
    except http.client.InvalidURL as e:
        raise FetchFailed(f"invalid url ({e})", False) from None
    except (OSError, http.client.HTTPException) as e:
        raise FetchFailed(_os_reason(e), True) from None


def _read_body(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    """Read a whole body, refusing huge ones and detecting truncation."""
    length = (response.headers.get("Content-Length") or "").strip()
    expected = int(length) if length.isdigit() else None
    if expected is not None and expected > max_bytes:
        raise FetchFailed(f"file too large ({expected} bytes)", False)
    data = response.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FetchFailed(f"file too large (over {max_bytes} bytes)", False)
    if expected is not None and len(data) < expected:
        raise FetchFailed(f"truncated body (got {len(data)} of {expected} bytes)", True)
    return data


def retry_after(headers: Message | None) -> float:
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
