"""Sends to one chat leave in the order they were published: a lane starts each command in
its own task, and the steps before the call take different times, so a bot's multi-part
reply reached the chat shuffled (``part 2`` before ``part 1``); two instances each taking
some of the parts, or an instance sending some back for its account's share, shuffled it
too. A send that fails on the way holds no one up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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
PARTS = [f"part {n}" for n in range(8)]


@asynccontextmanager
async def order_stack(
    nats_url: str, monkeypatch: pytest.MonkeyPatch, **env: Any
) -> AsyncIterator[OutboundStack]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "order_bot")

    def accounts(sandbox: str) -> list[Account]:
        return [telegram_shop(sandbox, TOKEN)]

    async with outbound_stack(box, nats_url, monkeypatch, accounts, timeout=30, **env) as s:
        yield s


async def publish(bus: Bus, chat: str, texts: list[str]) -> None:
    for n, text in enumerate(texts):
        await bus.publish(text_send(f"{chat}-{n}", chat, text), workspace_id="demo")


async def sent_to(stack: OutboundStack, *chats: str, count: int) -> list[list[str]]:
    """The texts each chat received, once each has ``count``."""

    def texts(chat: str) -> list[str]:
        reqs = stack.box.recorder.requests(provider="telegram", method="sendMessage", ok=True)
        return [str(r.params.get("text")) for r in reqs if str(r.params.get("chat_id")) == chat]

    async def all_sent() -> list[list[str]]:
        found = [texts(chat) for chat in chats]
        return found if all(len(f) == count for f in found) else []

    return await eventually(all_sent, timeout=60)


async def test_sends_to_one_chat_leave_in_the_order_they_were_published(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published before outbound starts, so its lane receives them all at once."""
    too_long = "x" * 5000  # over Telegram's 4096: failed before any call, in the middle
    texts = [*PARTS[:4], too_long, *PARTS[4:]]
    bus = await Bus.connect(nats_url, name="order-test")
    try:
        await bus.provision()
        await publish(bus, "4101", texts)
        await publish(bus, "4102", texts)
    finally:
        await bus.close()
    async with order_stack(nats_url, monkeypatch) as stack:
        assert await sent_to(stack, "4101", "4102", count=len(PARTS)) == [PARTS, PARTS]


async def test_sends_to_one_chat_keep_their_order_across_two_instances(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances pulling: the parts of one reply are spread over both, and each part
    waits for the earlier ones still in the stream, whoever holds them."""
    async with order_stack(nats_url, monkeypatch, SWITCHBOARD_INSTANCE_ID="one") as stack:
        monkeypatch.setenv("SWITCHBOARD_INSTANCE_ID", "two")
        async with serve_app(create_app(load_settings(OutboundSettings))):
            await publish(stack.bus, "4103", PARTS)
            assert await sent_to(stack, "4103", count=len(PARTS)) == [PARTS]
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
    async with order_stack(nats_url, monkeypatch, SWITCHBOARD_CONCURRENCY="2") as stack:
        await publish(stack.bus, "4104", PARTS)
        assert await sent_to(stack, "4104", count=len(PARTS)) == [PARTS]
