"""uvicorn's HTTP protocol with time limits on a request's headers and body (against slow and lying clients).

    uvicorn.run(app, http=timed_protocol(ServiceLimits()))

uvicorn times out idle keep-alive connections only until their first byte, and a request's body not
at all, so a client that trickles a header (one byte a second), or declares a Content-Length larger
than the body it sends, would otherwise hold its connection for as long as it likes.
"""
from __future__ import annotations

from typing import Any

from fashionstyle.serving.limits import ServiceLimits


class RequestTimeouts:
    """Mixin for uvicorn's HTTP protocol classes: close a connection whose

    - request line and headers have not all arrived `header_timeout` s after it opened or after its
      previous response ended (headers are complete when the protocol starts a new cycle);
    - request body pauses for `body_timeout` s, or is not complete `body_deadline` s after its headers
      (the body is complete when the cycle's `more_body` turns False, or once the response is sent).
    """

    header_timeout: float = ServiceLimits.header_timeout
    body_timeout: float = ServiceLimits.body_timeout
    body_deadline: float = ServiceLimits.body_deadline
    _timer: Any = None
    _header_cycle: Any = None  # the cycle current while waiting for the next request's headers
    _body_cycle: Any = None    # the cycle whose body is awaited
    _body_due: float = 0.0     # loop time by which that body must be complete

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle  # type: ignore[attr-defined]
        if cycle is self._header_cycle:
            return  # still in the headers: the header timer runs on
        if cycle is not None and not cycle.response_complete and cycle.more_body:
            if cycle is not self._body_cycle:  # the headers just completed
                self._body_cycle, self._body_due = cycle, self.loop.time() + self.body_deadline  # type: ignore[attr-defined]
            self._arm(min(self.body_timeout, self._body_due - self.loop.time()))  # type: ignore[attr-defined]
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        finished = self.cycle  # type: ignore[attr-defined]
        super().on_response_complete()  # type: ignore[misc]
        if self.cycle is finished and not self.transport.is_closing():  # type: ignore[attr-defined]
            self._await_headers()  # no pipelined request started: wait for the next one's headers
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _await_headers(self) -> None:
        self._header_cycle = self.cycle  # type: ignore[attr-defined]
        self._arm(self.header_timeout)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(max(0.0, seconds), self._too_slow)  # type: ignore[attr-defined]

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        cycle = self.cycle  # type: ignore[attr-defined]
        waiting_headers = cycle is self._header_cycle
        waiting_body = cycle is self._body_cycle and cycle is not None and cycle.more_body \
            and not cycle.response_complete
        if (waiting_headers or waiting_body) and not self.transport.is_closing():  # type: ignore[attr-defined]
            self.transport.close()  # type: ignore[attr-defined]


def timed_protocol(limits: ServiceLimits | None = None) -> type:
    """uvicorn's HTTP protocol (as `http="auto"` picks it) with RequestTimeouts at `limits`' values."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    limits = limits or ServiceLimits()
    return type("TimedHTTPProtocol", (RequestTimeouts, AutoHTTPProtocol),
                {"header_timeout": float(limits.header_timeout), "body_timeout": float(limits.body_timeout),
                 "body_deadline": float(limits.body_deadline)})
