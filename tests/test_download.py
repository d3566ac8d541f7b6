"""Tests for fashionstyle.data.download.fetch against a local fault-injecting HTTP server."""
from __future__ import annotations

import csv
import io
import os
import shutil
import struct
import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from fashionstyle.data.download.fetch import (
    DownloadSummary,
    download_images,
    format_summary,
)
from fashionstyle.data.download.url_list import read_url_list
from fashionstyle.core.errors import FashionStyleError

TIMEOUT = 0.5  # client time-out used in the tests
JUNK_BYTES = 2_000_000  # trailing junk after an image
TRICKLE = 0.2  # seconds between the bytes of a trickling server: each read waits less than TIMEOUT

# id -> fault while the server is unhealthy (a healthy server serves all).
FAULTS = {
    "ok_a": "ok",
    "ok_b": "ok",
    "e500": "500 twice",
    "e429": "429 once",
    "reset": "reset once",
    "stall": "timeout once",
    "trunc": "truncate once",
    "slow": "slow",
    "notimg": "not an image",
    "missing": "404",
    "bomb": "bomb",
    "bomb_warn": "bomb warn",
}
TRANSIENT = [k for k, v in FAULTS.items() if v in ("ok", "slow") or "once" in v or "twice" in v]
EXPECTED_REASON = {
    "notimg": "not an image",
    "missing": "HTTP 404 Not Found",
    "bomb": "image too large",
    "bomb_warn": "image too large",
}
# Requests the first run makes: permanent faults exactly, transient at least.
EXPECTED_HITS = {"e500": 3, "e429": 2, "reset": 2, "stall": 2, "trunc": 2,
                 "ok_a": 1, "ok_b": 1, "slow": 1,
                 "notimg": 2, "missing": 1, "bomb": 1, "bomb_warn": 1}


def _jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), (20 * i % 256, 90, 200 - 10 * i)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    buf = io.BytesIO()
    Image.new("1", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # quiet broken pipes
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        name = self.path.strip("/").removesuffix(".jpg")
        with srv.lock:
            srv.hits[name] += 1
            n = srv.hits[name]
        if name.startswith("trickle_"):
            return self._trickle(name.removeprefix("trickle_"))
        if name.startswith("redirect_"):  # redirect_ok_a -> /ok_a.jpg; redirect_ftp -> ftp://...
            target = name.removeprefix("redirect_")
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1:9/x.jpg" if target == "ftp" else f"/{target}.jpg")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        path = srv.src / f"{name}.jpg"
        if not path.is_file():
            return self.send_error(404)
        body = path.read_bytes()
        fault = "ok" if srv.healthy else FAULTS.get(name, "ok")
        if fault == "500 twice" and n <= 2:
            return self.send_error(500)
        if fault == "429 once" and n == 1:
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if fault == "reset once" and n == 1:
            self.close_connection = True  # close the socket, no response
            return
        if fault == "timeout once" and n == 1:
            srv.stop.wait(4 * TIMEOUT)  # client gives up first
            self.close_connection = True
            return
        if fault == "404":
            return self.send_error(404)
        if fault == "not an image":
            body = b"<html>rate limited</html>"
        elif fault == "bomb":
            body = _png_claiming(20_000, 20_000)  # > 2x the cap: Pillow error
        elif fault == "bomb warn":
            body = _png_claiming(10_000, 10_000)  # > cap: Pillow warning
        if name.startswith("junk_"):  # a valid image, then junk that decoders ignore
            body += b"\xff\xd9 junk " * (JUNK_BYTES // 10)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        if fault == "truncate once" and n == 1:
            self.send_header("Content-Length", str(len(body) + 100))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "slow":  # the body in 4 pieces, well within the deadline
            for i in range(4):
                srv.stop.wait(TIMEOUT / 8)
                self.wfile.write(body[i * len(body) // 4 : (i + 1) * len(body) // 4])
                self.wfile.flush()
        else:
            self.wfile.write(body)


    def _trickle(self, where: str) -> None:
        """One byte every TRICKLE seconds until the server stops: of a header, or of a long body."""
        if where == "headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        else:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
        while not self.server.stop.wait(TRICKLE):
            self.wfile.write(b"a")
        self.close_connection = True


@pytest.fixture
def server(tmp_path, monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(FAULTS):
        (src / f"{name}.jpg").write_bytes(_jpeg(i))
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.src, srv.hits, srv.lock = src, Counter(), threading.Lock()
    srv.healthy, srv.stop = False, threading.Event()
    srv.url = lambda name: f"http://127.0.0.1:{srv.server_address[1]}/{name}.jpg"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.stop.set()
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _fetch_all(srv, out: Path, **kw) -> DownloadSummary:
    items = [(name, srv.url(name)) for name in FAULTS]
    kw = {"workers": 4, "retries": 3, "timeout": TIMEOUT, "backoff": 0.01, "progress": False} | kw
    return download_images(items, out, **kw)


def _decodes(path: Path) -> bool:
    with Image.open(path) as image:
        image.load()
    return True


def test_faults_then_resume(server, tmp_path):
    out = tmp_path / "out"
    first = _fetch_all(server, out)

    assert (first.fetched, first.already_there, first.failed) == (len(TRANSIENT), 0, 4)
    assert {i: r for i, _, r in first.failures} == EXPECTED_REASON
    for name in TRANSIENT:  # bytes kept exactly as served, and they decode
        assert (out / f"{name}.jpg").read_bytes() == (server.src / f"{name}.jpg").read_bytes()
        assert _decodes(out / f"{name}.jpg")
    assert sorted(os.listdir(out)) == sorted([f"{n}.jpg" for n in TRANSIENT] + ["download_failures.csv"])
    with open(out / "download_failures.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "url", "reason"]
    assert [tuple(r) for r in rows[1:]] == first.failures
    for name, hits in EXPECTED_HITS.items():
        if name in EXPECTED_REASON:  # never retried (404, bomb) or once (not an image)
            assert server.hits[name] == hits, name
        else:
            assert server.hits[name] >= hits, name
    assert format_summary(first) == (
        f"fetched {len(TRANSIENT)}, already there 0, failed 4 "
        f"(see {out / 'download_failures.csv'})"
    )

    server.healthy = True
    before = Counter(server.hits)
    second = _fetch_all(server, out)
    assert (second.fetched, second.already_there, second.failed) == (4, len(TRANSIENT), 0)
    assert (server.hits - before) == Counter(EXPECTED_REASON.keys())  # only the missing ones asked
    assert sorted(os.listdir(out)) == sorted(f"{n}.jpg" for n in FAULTS)  # stale csv gone
    assert all(_decodes(out / f"{n}.jpg") for n in FAULTS)
    assert format_summary(second) == f"fetched 4, already there {len(TRANSIENT)}, failed 0"


def test_corrupt_existing_refetched_and_leftovers_removed(server, tmp_path):
    server.healthy = True
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(server.src / "ok_a.jpg", out / "ok_a.jpg")
    good_b = (server.src / "ok_b.jpg").read_bytes()
    (out / "ok_b.jpg").write_bytes(good_b[: len(good_b) // 2])  # truncated earlier run
    (out / ".ok_b.jpg.dead.part").write_bytes(b"partial")
    (out / "download_failures.csv").write_text("id,url,reason\nx,http://x/,old\n")

    items = [(n, server.url(n)) for n in ("ok_a", "ok_b")]
    summary = download_images(items, out, timeout=TIMEOUT, backoff=0.01, progress=True)

    assert (summary.fetched, summary.already_there, summary.failed) == (1, 1, 0)
    assert server.hits == Counter({"ok_b": 1})
    assert (out / "ok_b.jpg").read_bytes() == good_b
    assert sorted(os.listdir(out)) == ["ok_a.jpg", "ok_b.jpg"]


def test_failed_refetch_leaves_no_corrupt_file(server, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "missing.jpg").write_bytes(b"\xff\xd8 junk")
    summary = download_images([("missing", server.url("missing"))], out,
                              timeout=TIMEOUT, backoff=0.01, progress=False)
    assert summary.failures == [("missing", server.url("missing"), "HTTP 404 Not Found")]
    assert sorted(os.listdir(out)) == ["download_failures.csv"]


def test_read_url_list_accepts_bom_crlf_blank_lines(tmp_path):
    path = tmp_path / "train.txt"
    labels = ",".join(["0"] * 12 + ["1"])
    text = f"\ufeffa1,http://x/a1.jpg,{labels}\r\n\r\n  \r\nb2 , https://x/b2.jpg ,{labels}\r\n"
    path.write_bytes(text.encode("utf-8"))
    assert read_url_list(path) == [("a1", "http://x/a1.jpg"), ("b2", "https://x/b2.jpg")]
    test = tmp_path / "test.txt"
    test.write_text("t1,http://x/t1.jpg\nt2,http://x/t2.jpg")
    assert read_url_list(test) == [("t1", "http://x/t1.jpg"), ("t2", "http://x/t2.jpg")]


@pytest.mark.parametrize("bad_line, message", [
    ("lonely", "labels.txt:3: expected id,url,...; got 1 field"),
    (",http://x/y.jpg", "labels.txt:3: empty id"),
    ("c3,ftp://x/c.jpg", "labels.txt:3: url must start with http:// or https://; got 'ftp://x/c.jpg'"),
    ("c3,x/c.jpg,0", "labels.txt:3: url must start with http:// or https://"),
    ("a1,http://x/again.jpg", "labels.txt:3: duplicate id 'a1' (first on line 1)"),
    ("../up,http://x/u.jpg", "labels.txt:3: id '../up' cannot be used as a file name"),
])
def test_read_url_list_errors_name_file_and_line(tmp_path, monkeypatch, bad_line, message):
    monkeypatch.chdir(tmp_path)
    Path("labels.txt").write_text(f"a1,http://x/a1.jpg\nb2,http://x/b2.jpg\n{bad_line}\n")
    with pytest.raises(FashionStyleError) as info:
        read_url_list("labels.txt")
    assert str(info.value).startswith(message)


def test_read_url_list_missing_file(tmp_path):
    with pytest.raises(FashionStyleError, match="no such file"):
        read_url_list(tmp_path / "nope.txt")


@pytest.mark.parametrize("items, kw, message", [
    ([("a", "http://x/a.jpg")], {"workers": 0}, "workers must be >= 1; got 0"),
    ([("a", "http://x/a.jpg")], {"timeout": 0}, "timeout must be > 0"),
    ([("a", "http://x/a.jpg"), ("a", "http://x/b.jpg")], {}, "download item 2: duplicate id 'a'"),
    ([("a/b", "http://x/a.jpg")], {}, "cannot be used as a file name"),
    ([("a", "file:///etc/passwd")], {}, "url must start with http"),
])
def test_download_rejects_bad_arguments(tmp_path, items, kw, message):
    with pytest.raises(FashionStyleError, match=message):
        download_images(items, tmp_path / "out", progress=False, **kw)


@pytest.mark.slow  # a wall-clock bound: about 2 s per case
@pytest.mark.parametrize("where", ["body", "headers"])
def test_trickling_server_costs_at_most_the_deadline_per_attempt(server, tmp_path, where):
    """One byte every 0.2 s never trips a per-read time-out; the whole-file deadline cuts each attempt off
    (without it the trickle never ends)."""
    deadline, retries = 0.6, 2
    url = server.url(f"trickle_{where}")
    result = {}

    def fetch() -> None:
        start = time.monotonic()
        result["summary"] = download_images([("t", url)], tmp_path / "out", retries=retries, timeout=deadline,
                                            backoff=0.01, progress=False)
        result["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    bound = 3 * (retries + 1) * deadline  # 3x the expected time: backoff, start-up, a loaded machine
    thread.join(bound + 2)
    assert not thread.is_alive(), f"one trickled file still downloading after {bound + 2:.1f} s"
    assert result["elapsed"] <= bound
    assert result["summary"].failures == [("t", url, f"timed out (no whole file within {deadline:g} s)")]
    assert server.hits[f"trickle_{where}"] == retries + 1
    assert sorted(os.listdir(tmp_path / "out")) == ["download_failures.csv"]


def test_url_with_a_comma_is_read_whole(server, tmp_path):
    labels = ",".join(["0"] * 12 + ["1"])
    path = tmp_path / "list.txt"
    path.write_text(f"c1,http://x/a,b.jpg\nc2,http://x/a,b.jpg?w=1,{labels}\nc3,\"http://x/q,1\",1,0\n"
                    "c4,http://x/plain.jpg,0,1\n")
    assert read_url_list(path) == [("c1", "http://x/a,b.jpg"), ("c2", "http://x/a,b.jpg?w=1"),
                                   ("c3", "http://x/q,1"), ("c4", "http://x/plain.jpg")]
    shutil.copy(server.src / "ok_a.jpg", server.src / "a,b.jpg")
    path.write_text(f"c1,{server.url('a,b')}\n")
    summary = download_images(read_url_list(path), tmp_path / "out", timeout=TIMEOUT, progress=False)
    assert summary.fetched == 1 and server.hits["a,b"] == 1
    assert (tmp_path / "out" / "c1.jpg").read_bytes() == (server.src / "ok_a.jpg").read_bytes()


def test_redirects_are_followed_to_http_only(server, tmp_path):
    server.healthy = True
    items = [("ok", server.url("redirect_ok_a")), ("ftp", server.url("redirect_ftp"))]
    summary = download_images(items, tmp_path / "out", retries=2, timeout=TIMEOUT, backoff=0.01, progress=False)
    assert summary.fetched == 1 and server.hits["ok_a"] == 1
    assert summary.failures == [("ftp", items[1][1],
                                 "redirected to 'ftp://127.0.0.1:9/x.jpg'; only http:// and https:// are followed")]
    assert server.hits["redirect_ftp"] == 1  # not retried


def test_retry_after_as_seconds_or_as_an_http_date():
    from email.message import Message
    from email.utils import formatdate

    from fashionstyle.data.download.http_get import MAX_DELAY, retry_after

    def header(value: str) -> Message:
        message = Message()
        message["Retry-After"] = value
        return message

    assert retry_after(header("7")) == 7.0
    assert 15.0 <= retry_after(header(formatdate(time.time() + 20, usegmt=True))) <= 20.0
    assert retry_after(header(formatdate(time.time() + 3600, usegmt=True))) == MAX_DELAY
    assert retry_after(header(formatdate(time.time() - 60, usegmt=True))) == 0.0
    assert retry_after(header("soon")) == 0.0 and retry_after(Message()) == 0.0


def test_junk_after_the_image_is_not_kept(server, tmp_path):
    server.healthy = True
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 90)).save(buffer, "PNG")
    (server.src / "junk_png.jpg").write_bytes(buffer.getvalue())
    shutil.copy(server.src / "ok_a.jpg", server.src / "junk_jpeg.jpg")
    items = [(name, server.url(name)) for name in ("junk_jpeg", "junk_png")]
    summary = download_images(items, tmp_path / "out", timeout=5.0, progress=False)
    assert summary.fetched == 2
    assert (tmp_path / "out" / "junk_jpeg.jpg").read_bytes() == (server.src / "ok_a.jpg").read_bytes()
    assert (tmp_path / "out" / "junk_png.jpg").read_bytes() == buffer.getvalue()
