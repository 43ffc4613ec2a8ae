"""The bus's header encoding (``bus.encode_headers`` through its client) writes exactly the
bytes nats-py's own ``_send_publish`` writes, for every kind of header dict, and refuses
the keys nats-py refuses."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NatsClient
from nats.errors import BadHeaderError

from switchboard.runtime.bus import _Client

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
