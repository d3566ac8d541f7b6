"""ASGI middleware reading a request body before the app parses it: a size limit, and plain file names.

    app.add_middleware(RequestBody, max_bytes=10_000_000)

A body over `max_bytes` is refused with 413 (by Content-Length first, then by the bytes actually
received: chunked uploads, lying headers), as JSON {"detail": "..."} with `Connection: close`. An
accepted body is buffered, its RFC 5987 file names made plain (filenames.py), and replayed to the
app. How long a body may take is the protocol's business (protocol.py).
"""
from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from fashionstyle.serving.filenames import plain_filenames


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
