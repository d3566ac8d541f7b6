"""ASGI middleware reading a request body before the app parses it: a size limit, and plain file names.

    app.add_middleware(RequestBody, max_bytes=10_000_000)

A body over `max_bytes` is refused with 413 (by Content-Length first, then by the bytes actually
received: chunked uploads, lying headers), as JSON {"detail": "..."} with `Connection: close`. An
accepted body is buffered, its RFC 5987 file names made plain (plain_filenames, below), and replayed to the
app. How long a body may take is the protocol's business (protocol.py).
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi.responses import JSONResponse


class RequestBody:
    """Refuse bodies over `max_bytes` with 413; hand the app the rest whole, with plain file names."""

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
                await send_json(send, 400, "invalid Content-Length header")
                return
            if declared > self.max_bytes:
                await send_json(send, 413, self._too_large(declared))
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await send_json(send, 413, self._too_large(size, at_least=message.get("more_body", False)))
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        body = plain_filenames(b"".join(chunks), headers.get(b"content-type", b""))
        del chunks  # one copy of the body, not two, while the request runs
        replay = [{"type": "http.request", "body": body, "more_body": False}]
        del body

        async def replayed() -> dict:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)

    def _too_large(self, size: int, at_least: bool = False) -> str:
        more = "more than " if at_least else ""
        return (f"request body too large: {more}{size:,} bytes (the limit is {self.max_bytes:,} bytes); "
                "send fewer or smaller images")


async def send_json(send: Any, status: int, detail: str) -> None:
    """Answer {"detail": ...} with `status` and close the connection afterwards."""
    response = JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


# RFC 5987 file names in multipart uploads: `filename*=UTF-8''caf%C3%A9.jpg` made `filename="café.jpg"`.
#
#     body = plain_filenames(body, content_type)     # unchanged when no part has a filename* parameter
#
# python-multipart (what Starlette parses forms with) follows RFC 7578 and ignores `filename*`, so a
# part named only that way would reach the app as a text field, not a file. Some clients (curl's
# libcurl options, HTTP libraries following RFC 6266) send it for non-ASCII names; as RFC 6266 says,
# it wins over a plain `filename` given beside it. The decoded name travels as UTF-8, which Starlette
# reads in a form without a charset.
DISPOSITION = re.compile(r"(?im)^content-disposition:[^\r\n]*")
EXTENDED = re.compile(r";\s*filename\*\s*=\s*(\"[^\"]*\"|[^;]*)", re.I)
ANY_FILENAME = re.compile(r";\s*filename\*?\s*=\s*(?:\"(?:[^\"\\]|\\.)*\"|[^;]*)", re.I)
BOUNDARY = re.compile(rb"boundary=(\"[^\"]+\"|[^;\s]+)", re.I)


def plain_filenames(body: bytes, content_type: bytes) -> bytes:
    """`body` (multipart/form-data) with each part's filename* decoded into a plain quoted filename."""
    found = BOUNDARY.search(content_type or b"")
    if b"filename*" not in body or not found:
        return body
    delimiter = b"\r\n--" + found.group(1).strip(b'"')
    parts = (b"\r\n" + body).split(delimiter)  # the first delimiter may open the body without a CRLF
    for k in range(1, len(parts)):
        end = parts[k].find(b"\r\n\r\n")
        if end > 0:
            head = parts[k][:end].decode("latin-1")  # header bytes as they are, one char per byte
            parts[k] = DISPOSITION.sub(_plain, head).encode("latin-1") + parts[k][end:]
    return delimiter.join(parts)[2:]


def _plain(match: re.Match) -> str:
    """One Content-Disposition line with filename* (if any, and decodable) as its only filename."""
    line = match.group(0)
    extended = EXTENDED.search(line)
    name = decode_extended(extended.group(1)) if extended else None
    if name is None:
        return line
    quoted = "".join(c for c in name if c >= " " and c != "\x7f").replace("\\", "\\\\").replace('"', '\\"')
    return ANY_FILENAME.sub("", line) + '; filename="' + quoted.encode("utf-8").decode("latin-1") + '"'


def decode_extended(value: str) -> str | None:
    """The text of an RFC 5987 ext-value (`charset'language'percent-encoded`), or None if it is not one."""
    charset, quote, rest = value.strip().strip('"').partition("'")
    language, quote2, encoded = rest.partition("'")
    if not (quote and quote2):
        return None
    try:
        return unquote_to_bytes(encoded).decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError):
        return None
