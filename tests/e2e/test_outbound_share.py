"""One account's burst of conversational sends leaves room for every other account's: an
account holds at most a share of an instance's places in its lane (here 20 of 64), and
the server holds the rest until the account has room (``outbound.share``). Before, one
workspace's burst through its own bot filled every place of the lane, and another
workspace's reply waited in the stream behind it (30.7 s behind 1,500 sends at 30/s)."""

from __future__ import annotations

from collections import Counter

import pytest
from tests.support.outbound import outbound_stack, sandbox_account, text_send

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig, SlidingWindow

pytestmark = pytest.mark.e2e
A, B = "300000041:share-a", "300000042:share-b"
# A's bot is slow (10/s), so that how fast the burst is sent back cannot decide the test:
# before, BURST - PLACES of it went out ahead of the reply (over 13 s); now a few.
RATE, RATE_A, BURST, PLACES = 30, 10, 200, 64


async def test_a_burst_through_one_bot_leaves_room_for_another_workspace_s_reply(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Sandbox(SandboxConfig())
    box.config.telegram.limits.bot = SlidingWindow(limit=RATE, window=1.0)
    box.telegram.add_bot(A, "share_a_bot")
    box.telegram.add_bot(B, "share_b_bot")

    def accounts(sandbox: str) -> list[Account]:
        slow, limits = {"bot": [RATE_A, 1]}, {"bot": [RATE, 1]}
        return [
            sandbox_account(sandbox, Channel.TELEGRAM, "a", {"token": A}, limits=slow),
            sandbox_account(
                sandbox, Channel.TELEGRAM, "b", {"token": B}, workspace="other", limits=limits
            ),
        ]

    def accepted(prefix: str) -> list[str]:
        return [
            str(r.params.get("text"))
            for r in box.recorder.requests(provider="telegram", method="sendMessage", ok=True)
            if str(r.params.get("text", "")).startswith(prefix)
        ]

    async with outbound_stack(
        box, nats_url, monkeypatch, accounts, timeout=30, SWITCHBOARD_OUTBOUND_CONCURRENCY=PLACES
    ) as stack:
        for i in range(BURST):
            send = text_send(f"burst-{i}", str(40_000 + i), f"burst {i}", account="a")
            await stack.bus.publish(send, workspace_id="demo")

        async def started() -> list[str]:
            return accepted("burst")

        await eventually(started, timeout=30)
        reply = text_send("reply", "41000", "reply of b", account="b")
        await stack.bus.publish(reply, workspace_id="other")

        async def replied() -> int | None:
            return len(accepted("burst")) if accepted("reply") else None

        burst_first = await eventually(replied, timeout=60)
        # Before, the reply had BURST - PLACES = 136 of the burst in front of it.
        assert burst_first < BURST // 2, f"{burst_first} of the burst went before the reply"

        async def all_sent() -> list[str] | None:
            found = accepted("burst")
            return found if len(found) >= BURST else None

        sent = await eventually(all_sent, timeout=120)
        assert Counter(sent) == Counter(f"burst {i}" for i in range(BURST))  # each once

        async def lane_empty() -> bool:
            info = await stack.bus.js.consumer_info("OUTBOUND", "outbound-sends")
            state = await stack.bus.js.stream_info("OUTBOUND")
            return not info.num_ack_pending and not info.num_pending and not state.state.messages

        await eventually(lane_empty, timeout=30)
