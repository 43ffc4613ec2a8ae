"""``Bus.delete_msg`` on real NATS: a message that is gone (deleted, acked from a work queue,
past the stream's end) is answered ``False``, not the 500 JetStream gives for it."""

from __future__ import annotations

import pytest
from nats.js.errors import NotFoundError

from switchboard.runtime.bus import Bus


async def test_a_message_deleted_twice_is_deleted_once(bus: Bus) -> None:
    ack = await bus.publish_raw("dlq.t.x", b"x", {"Nats-Msg-Id": "delete-twice"})
    assert await bus.delete_msg(ack.stream, ack.seq) is True
    with pytest.raises(NotFoundError):
        await bus.js.get_msg(ack.stream, ack.seq)
    assert await bus.delete_msg(ack.stream, ack.seq) is False


async def test_a_message_past_the_stream_s_end_or_no_sequence_is_absent(bus: Bus) -> None:
    ack = await bus.publish_raw("dlq.t.y", b"y", {"Nats-Msg-Id": "delete-past"})
    assert await bus.delete_msg(ack.stream, ack.seq + 1000) is False
    assert await bus.delete_msg(ack.stream, 0) is False
    assert (await bus.js.get_msg(ack.stream, ack.seq)).data == b"y"  # untouched


async def test_another_failure_is_raised(bus: Bus) -> None:
    with pytest.raises(NotFoundError):  # no such stream: not "already gone"
        await bus.delete_msg("NO_SUCH_STREAM", 1)
