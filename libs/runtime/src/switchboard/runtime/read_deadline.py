"""Every HTTP request read within a deadline, or answered 408 and closed.

uvicorn times out only a connection idle after a response: one that opens and sends
nothing, drips its headers or stops half-way through its body holds a socket and a task for
as long as the peer likes, so a few thousand of them (slowloris) keep the providers' webhooks
out. The rule is Apache's ``mod_reqtimeout``: a request has ``timeout_s`` from its first byte
(a new connection: from its opening) to its last, and each body byte that arrives adds
``1 / min_rate`` s, so a large upload at a sane rate always finishes while a peer dripping a
byte a second gains nothing; headers get no extension (their size has no other bound).
uvicorn has no such setting, hence the subclass of its protocol (the one ``http="auto"``
picks with ``uvicorn[standard]``). Its cost is one timer per request: ``call_at`` and
``cancel`` take 1.8 us (asyncio; 2.3 us on uvloop; a loop of 200,000), about 1.5 % of the
~120 us of CPU a webhook takes in the ingest.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from switchboard.runtime.http import PROBLEM_JSON, problem_body


def read_deadline_protocol(timeout_s: float, min_rate: float = 500.0) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with each request read within ``timeout_s`` seconds plus one
    second for every ``min_rate`` bytes of body received."""

    class ReadDeadlineProtocol(_ReadDeadline):
        read_timeout_s = timeout_s
        body_min_rate = min_rate

    return ReadDeadlineProtocol


class _ReadDeadline(HttpToolsProtocol):
    read_timeout_s: float
    body_min_rate: float
    _read_timer: asyncio.TimerHandle | None = None
    _began = 0.0
    _body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_timer is None:  # the next request on a kept-alive connection
            self._arm()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the connection is the WebSocket protocol's from here (none use it now)
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._began = self.loop.time()
        self._body_bytes = 0
        self._read_timer = self.loop.call_at(
            self._began + self.read_timeout_s, self._read_timed_out
        )

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        until = self._began + self.read_timeout_s + self._body_bytes / self.body_min_rate
        if self.loop.time() < until:  # the body arrived fast enough to earn more time
            self._read_timer = self.loop.call_at(until, self._read_timed_out)
            return
        cycle: Any = self.cycle
        answered = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            # The app, if it is reading the body, gets http.disconnect; whatever it sends
            # from now on is dropped (uvicorn's send does nothing once disconnected).
            cycle.disconnected = True
            cycle.message_event.set()
        if not answered:
            self.transport.write(_timed_out(self.read_timeout_s, self.body_min_rate))
        self.transport.close()


def _timed_out(timeout_s: float, min_rate: float) -> bytes:
    body = orjson.dumps(
        problem_body(
            408,
            "request_timeout",
            f"the request did not arrive within {timeout_s:g} s (plus 1 s per "
            f"{min_rate:g} bytes of body)",
        )
    )
    head = (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"content-type: " + PROBLEM_JSON.encode() + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n"
    )
    return head + body
