"""The bus's header encoding (``bus.encode_headers`` through its client) writes exactly the
bytes nats-py's own ``_send_publish`` writes, for every kind of header dict, and refuses
the keys nats-py refuses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import BadHeaderError

from switchboard.ingest.raw import raw_envelope
from switchboard.runtime.bus import EncodedHeaders, _Client, encode_headers, parse_header_lines

CASES: list[dict[str, str]] = [
    {},
    {"Nats-Msg-Id": "tg:bench:1"},
    {
        "ce-id": "tg:demo:42",
        "Nats-Msg-Id": "tg:demo:42",
        "ce-type": "switchboard.raw.telegram.v1",
        "ce-time": "2026-12-05T17:00:00.000000Z",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    },
    {"  padded  ": "  value with spaces  ", "x": ""},
    {"multi": "line\r\nbreak\nand\rreturn", "unicode": "Ада 🙂"},
    {"": "an empty key is skipped", " ": "so is a blank one", "k": "v"},
]


async def _written(client: NatsClient, headers: dict[str, str]) -> bytes:
    sent: list[bytes] = []

    async def capture(cmd: bytes, priority: bool = False) -> None:
        sent.append(cmd)

    client._send_command = capture  # type: ignore[method-assign]
    await client._send_publish("raw.telegram.v1.demo", "_INBOX.x", b"{}", 2, headers)
    return sent[0]


@pytest.mark.parametrize("headers", CASES)
async def test_the_header_block_is_nats_pys_byte_for_byte(headers: dict[str, str]) -> None:
    for _ in range(2):  # the second time from the cache of validated keys
        assert await _written(_Client(), headers) == await _written(NatsClient(), headers)


@pytest.mark.parametrize("key", ["bad key", "colon:", "new\nline", "ünïcode"])
async def test_a_key_nats_py_refuses_is_refused(key: str) -> None:
    with pytest.raises(BadHeaderError):
        await _written(NatsClient(), {key: "v"})
    with pytest.raises(BadHeaderError):
        await _written(_Client(), {key: "v"})


async def test_encoded_headers_send_their_block_and_never_a_stale_one() -> None:
    headers = EncodedHeaders({"ce-id": "a", "Nats-Msg-Id": "a"})
    assert headers.block == encode_headers(dict(headers))
    assert await _written(_Client(), headers) == await _written(NatsClient(), dict(headers))
    changes: list[Callable[[EncodedHeaders], object]] = [
        lambda h: h.__setitem__("Nats-Msg-Id", "b"),
        lambda h: h.__setitem__("Nats-Expected-Stream", "RAW"),  # as js.publish(stream=) does
        lambda h: h.__delitem__("ce-id"),
        lambda h: h.update({"x": "y"}),
        lambda h: h.__ior__({"x": "z"}),
        lambda h: h.setdefault("fresh", "v"),
        lambda h: h.pop("ce-id"),
        lambda h: h.popitem(),
        lambda h: h.clear(),
    ]
    for change in changes:
        changed = EncodedHeaders({"ce-id": "a", "Nats-Msg-Id": "a"})
        assert changed.block  # encoded before the change
        change(changed)
        assert await _written(_Client(), changed) == await _written(NatsClient(), dict(changed))


TRACE = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "k=v",
}


@pytest.mark.parametrize("trace", [{}, TRACE])
async def test_the_raw_envelopes_block_is_its_headers_block(trace: dict[str, str]) -> None:
    """The RAW envelope encodes its constant headers once per account: what it sends is
    still exactly what nats-py writes for its headers."""
    for raw_id in ("tg:demo:1", "wh:erp: spaced id "):
        _, headers = raw_envelope(
            provider="telegram",
            account="demo",
            raw_id=raw_id,
            source="switchboard://ingest",
            workspace_id="ws",
            received_at=datetime(2026, 12, 5, 20, 0, tzinfo=UTC),
            traceparent=trace.get("traceparent"),
            tracestate=trace.get("tracestate"),
        )
        assert headers.block == encode_headers(dict(headers))
        assert await _written(_Client(), headers) == await _written(NatsClient(), dict(headers))


HEADER_BLOCKS = [
    b"ce-id: tg:demo:1\r\nNats-Msg-Id: tg:demo:1\r\nce-type: switchboard.raw.telegram.v1\r\n\r\n",
    b"a:b\r\nc:\tspaced \r\n\r\n",  # no space after the colon, a tab, trailing space
    b"no colon here\r\n\r\nx: 1\r\n",  # a line without a colon, an empty line
    b"bad name: v\r\n\t: tab only\r\n: empty name\r\n",  # whitespace inside, an empty name
    "\u00fcml: non-ascii name\r\nok: v\r\n".encode(),
    b"v: \xff\xfe not utf-8\r\nw: \xd0\x90\xd0\xb4\xd0\xb0\r\n",
    b"dup: first\r\ndup: second\r\n",
    b"k: a: b: c\r\n",
]


@pytest.mark.parametrize("raw", HEADER_BLOCKS)
def test_header_lines_are_read_as_nats_py_reads_them(raw: bytes) -> None:
    for _ in range(2):  # the second time from the cache of names
        assert parse_header_lines(raw) == NatsClient._parse_header_lines(raw)
    assert _Client._parse_header_lines is parse_header_lines
