"""The HTTP read deadline (``runtime.read_deadline``) on a real uvicorn server and sockets:
a peer that sends nothing, drips its headers, drips its body below the minimum rate or stops
half-way through it is answered 408 and closed; a body arriving above the rate earns the
time it needs, and idle time between requests on a kept-alive connection does not count."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from switchboard.runtime.testing import serve_app

DEADLINE = 2.0
WAIT = 30  # far longer than the deadline: before it existed, these reads never ended


class Echo:
    """Answers each request with the length of its body; remembers what ``receive`` gave."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.answered: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        size = 0
        while True:
            message = await receive()
            self.received.append(message["type"])
            if message["type"] == "http.disconnect":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = json.dumps({"size": size}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.answered.append(size)


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Echo, str, int]]:
    app = Echo()
    async with serve_app(app, read_timeout_s=DEADLINE) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        yield app, parts.hostname, parts.port


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(WAIT):
        return await reader.read()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def test_a_connection_that_sends_nothing_is_closed_with_408(
    echo: tuple[Echo, str, int],
) -> None:
    _, host, port = echo
    reader, writer = await asyncio.open_connection(host, port)
    answer = await _read_all(reader)
    writer.close()
    assert _status(answer) == 408
    problem = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert problem["code"] == "request_timeout"
    assert problem["status"] == 408


async def test_headers_dripped_a_byte_at_a_time_do_not_reset_the_deadline(
    echo: tuple[Echo, str, int],
) -> None:
    app, host, port = echo
    reader, writer = await asyncio.open_connection(host, port)
    request = b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n" + b"x-pad: " + b"p" * 10_000

    async def drip() -> None:
        for byte in request:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.01)  # 100 s for the whole header: far past the deadline

    dripping = asyncio.create_task(drip())
    try:
        answer = await _read_all(reader)
    finally:
        dripping.cancel()
        writer.close()
    assert _status(answer) == 408
    assert app.received == []  # the app never saw the request


async def test_a_body_that_stops_half_way_is_408_and_the_app_sees_the_disconnect(
    echo: tuple[Echo, str, int],
) -> None:
    app, host, port = echo
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\n" + b"b" * 10)
    await writer.drain()
    answer = await _read_all(reader)
    writer.close()
    assert _status(answer) == 408
    assert answer.count(b"HTTP/1.1") == 1  # the app's own late answer was dropped
    assert app.received[-1] == "http.disconnect"


async def test_idle_time_between_kept_alive_requests_does_not_count(
    echo: tuple[Echo, str, int],
) -> None:
    app, host, port = echo
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for body in (b"one", b"second"):
            writer.write(
                b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            async with asyncio.timeout(WAIT):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                answer = json.loads(await reader.readexactly(length))
            assert _status(head) == 200
            assert answer == {"size": len(body)}
            # idle past the deadline: the connection must still serve the next request
            await asyncio.sleep(DEADLINE * 1.5)
    finally:
        writer.close()
    assert app.answered == [3, 6]


async def test_a_slow_request_that_arrives_within_the_deadline_is_served(
    echo: tuple[Echo, str, int],
) -> None:
    _, host, port = echo
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\nconnection: close\r\n\r\n")
    await writer.drain()
    for byte in b"body":
        writer.write(bytes([byte]))
        await writer.drain()
    answer = await _read_all(reader)
    writer.close()
    assert _status(answer) == 200
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"size": 4}


async def _send_body_slowly(size: int, chunk: int, pause: float, host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    head = b"POST /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
    writer.write(head % size)

    async def drip() -> None:
        for _ in range(size // chunk):
            writer.write(b"b" * chunk)
            await writer.drain()
            await asyncio.sleep(pause)

    dripping = asyncio.create_task(drip())
    try:
        return await _read_all(reader)
    finally:
        dripping.cancel()
        writer.close()


async def test_a_large_body_above_the_minimum_rate_earns_the_time_it_needs(
    echo: tuple[Echo, str, int],
) -> None:
    app, host, port = echo
    # 6,000 bytes at about 1,000 per second: 6 s, three times the deadline, twice the rate
    answer = await _send_body_slowly(6000, 400, 0.4, host, port)
    assert _status(answer) == 200
    assert app.answered == [6000]


async def test_a_body_dripped_below_the_minimum_rate_is_408(
    echo: tuple[Echo, str, int],
) -> None:
    app, host, port = echo
    # 10 bytes a second against 500: the extension it earns is negligible
    answer = await _send_body_slowly(100_000, 1, 0.1, host, port)
    assert _status(answer) == 408
    assert answer.count(b"HTTP/1.1") == 1
    assert app.received[-1] == "http.disconnect"
