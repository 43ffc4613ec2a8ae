"""Sends to one chat leave in the order they were published: a lane starts each command in
its own task, and the steps before the call take different times, so a bot's multi-part
reply reached the chat shuffled (``part 2`` before ``part 1``). A send that fails on the
way holds no one up."""

from __future__ import annotations

import pytest
from tests.support.outbound import OutboundStack, outbound_stack, telegram_shop, text_send
from tests.support.streams import stream_messages

from switchboard.outbound.app import create_app
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.accounts import Account
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
TOKEN = "300000051:order-a"


def texts_to(stack: OutboundStack, chat: str) -> list[str]:
    reqs = stack.box.recorder.requests(provider="telegram", method="sendMessage", ok=True)
    return [str(r.params.get("text")) for r in reqs if str(r.params.get("chat_id")) == chat]


async def test_sends_to_one_chat_leave_in_the_order_they_were_published(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published before outbound starts, so its lane receives them all at once."""
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "order_bot")
    parts = [f"part {n}" for n in range(10)]
    too_long = "x" * 5000  # over Telegram's 4096: failed before any call, in the middle
    texts = [*parts[:4], too_long, *parts[4:]]
    bus = await Bus.connect(nats_url, name="order-test")
    try:
        await bus.provision()
        for n, text in enumerate(texts):
            await bus.publish(text_send(f"ord-{n}", "4101", text), workspace_id="demo")
            await bus.publish(text_send(f"other-{n}", "4102", text), workspace_id="demo")
    finally:
        await bus.close()

    def accounts(sandbox: str) -> list[Account]:
        return [telegram_shop(sandbox, TOKEN)]

    async with outbound_stack(box, nats_url, monkeypatch, accounts, timeout=30) as stack:

        async def all_sent() -> tuple[list[str], list[str]] | None:
            found = texts_to(stack, "4101"), texts_to(stack, "4102")
            return found if all(len(f) == len(parts) for f in found) else None

        assert await eventually(all_sent, timeout=60) == (parts, parts)


async def test_sends_to_one_chat_keep_their_order_across_two_instances(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances pulling: the parts of one reply are spread over both, and each part
    waits for the earlier ones still in the stream, whoever holds them."""
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "order_bot")
    parts = [f"part {n}" for n in range(8)]

    def accounts(sandbox: str) -> list[Account]:
        return [telegram_shop(sandbox, TOKEN)]

    async with outbound_stack(
        box, nats_url, monkeypatch, accounts, timeout=30, SWITCHBOARD_INSTANCE_ID="one"
    ) as stack:
        monkeypatch.setenv("SWITCHBOARD_INSTANCE_ID", "two")
        async with serve_app(create_app(load_settings(OutboundSettings))):
            for n, text in enumerate(parts):
                await stack.bus.publish(text_send(f"two-{n}", "4103", text), workspace_id="demo")

            async def all_sent() -> list[str] | None:
                found = texts_to(stack, "4103")
                return found if len(found) == len(parts) else None

            assert await eventually(all_sent, timeout=60) == parts
    # the premise: both instances sent some of the parts (the server hands them out in turn)
    sent = await stream_messages(nats_url, "DELIVERY")
    senders = {d.envelope.source for d in sent if d.model.name == "delivery.sent"}
    assert senders == {"switchboard://outbound/one", "switchboard://outbound/two"}


async def test_sends_sent_back_for_their_account_s_share_keep_their_order(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance holds only its share of an account's sends (here one: two places) and
    sends the rest back to the stream for a moment (``share``); a later part that found
    room went before an earlier one that was sent back."""
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "order_bot")
    parts = [f"part {n}" for n in range(8)]

    def accounts(sandbox: str) -> list[Account]:
        return [telegram_shop(sandbox, TOKEN)]

    async with outbound_stack(
        box, nats_url, monkeypatch, accounts, timeout=30, SWITCHBOARD_CONCURRENCY="2"
    ) as stack:
        for n, text in enumerate(parts):
            await stack.bus.publish(text_send(f"back-{n}", "4104", text), workspace_id="demo")

        async def all_sent() -> list[str] | None:
            found = texts_to(stack, "4104")
            return found if len(found) == len(parts) else None

        assert await eventually(all_sent, timeout=60) == parts
