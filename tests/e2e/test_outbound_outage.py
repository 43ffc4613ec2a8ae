"""Outbound across an outage of the stream its events go to: the provider is called once and
the ``conv.message_sent`` event still arrives, once, when the stream is back.

Found by the platform chaos test (a NATS quorum loss while sends flowed): the send record
was stored as sent, the events' publish failed, and the redelivered command was acked as
"done before" without them, so the CRM and analytics never saw those replies.
"""

from __future__ import annotations

import nats.errors
import pytest
from tests.support.outbound import outbound_stack, telegram_shop, text_send
from tests.support.streams import stream_messages

from switchboard.events.streams import STREAMS
from switchboard.outbound.attempts import Attempt, Attempts
from switchboard.runtime.dlq import list_dead_letters
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
TOKEN = "300000009:outbound-outage"


async def test_a_send_whose_event_stream_is_down_is_announced_once_it_is_back(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "out_bot")
    async with outbound_stack(
        box,
        nats_url,
        monkeypatch,
        lambda sandbox: [telegram_shop(sandbox, TOKEN)],
        SWITCHBOARD_OUTBOUND_BACKOFF_BASE_S=0.1,
    ) as stack:
        bus = stack.bus
        await bus.js.delete_stream("CONV")  # where conv.message_sent goes
        await bus.publish(
            text_send("outage-1", "4242", "across the outage"),
            workspace_id="demo",
        )

        async def sent_and_redelivered() -> bool:
            calls = box.recorder.requests(provider="telegram", method="sendMessage")
            info = await bus.js.consumer_info("OUTBOUND", "outbound-sends")
            return len(calls) == 1 and info.delivered.consumer_seq >= 3

        await eventually(sent_and_redelivered, timeout=60, message="redelivered in the outage")
        await bus.ensure_stream(next(s for s in STREAMS if s.name == "CONV"))

        async def announced() -> list[object] | None:
            found = await stream_messages(nats_url, "CONV", "conv.message_sent.>")
            return found or None

        found = await eventually(announced, timeout=60, message="conv.message_sent")
        # ids of caller-keyed events carry the workspace (per-workspace idempotency)
        assert [d.envelope.id for d in found] == ["demo/sent:outage-1"]  # type: ignore[attr-defined]
        assert len(box.recorder.requests(provider="telegram", method="sendMessage")) == 1
        assert await list_dead_letters(bus) == []


async def test_a_sent_message_whose_record_cannot_be_stored_a_while_is_sent_once(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider has the message and the ``sends`` bucket is away (its stream without a
    leader in a quorum loss): the record is stored once the bucket is back, not left to the
    redelivery, which found no record of the send and called the provider again (the
    platform chaos test's duplicates)."""
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "out_bot")
    put = Attempts.put
    refused: list[str] = []

    async def bucket_away(self: Attempts, record: Attempt) -> None:
        if record.status == "sent" and len(refused) < 4:
            refused.append(record.message_id)
            raise nats.errors.TimeoutError
        await put(self, record)

    monkeypatch.setattr(Attempts, "put", bucket_away)
    async with outbound_stack(
        box, nats_url, monkeypatch, lambda sandbox: [telegram_shop(sandbox, TOKEN)]
    ) as stack:
        await stack.bus.publish(text_send("away-1", "4242", "once only"), workspace_id="demo")

        async def announced() -> list[object] | None:
            found = await stream_messages(nats_url, "CONV", "conv.message_sent.>")
            return found or None

        await eventually(announced, timeout=60, message="conv.message_sent")

        async def settled() -> bool:
            info = await stack.bus.js.consumer_info("OUTBOUND", "outbound-sends")
            return info.num_ack_pending == 0 and info.num_pending == 0

        await eventually(settled, timeout=60, message="the command acked")
        assert refused == ["away-1"] * 4  # the bucket was away for four tries
        assert len(box.recorder.requests(provider="telegram", method="sendMessage")) == 1
        record = await Attempts(await stack.bus.kv("sends")).get("demo", "away-1")
        assert record is not None
        assert record.status == "sent"
        assert await list_dead_letters(stack.bus) == []
