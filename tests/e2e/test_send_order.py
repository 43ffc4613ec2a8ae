"""Sends to one chat leave in the order they were published: a lane starts each command in
its own task, and the steps before the call take different times, so a bot's multi-part
reply reached the chat shuffled (``part 2`` before ``part 1``). A send that fails on the
way holds no one up."""

from __future__ import annotations

import pytest
from tests.support.outbound import OutboundStack, outbound_stack, telegram_shop, text_send

from switchboard.runtime.accounts import Account
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually
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
