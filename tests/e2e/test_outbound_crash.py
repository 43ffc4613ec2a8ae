"""Idempotency across crashes: three outbound processes run a campaign and conversational
sends; the campaign's leader is SIGKILLed mid-stream. Every recipient gets the message, a
duplicate is possible only for a send in flight at the kill, the campaign completes (led by
another instance) with exact totals, and every conversational message is delivered."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from tests.support.outbound import register, sandbox_account, start_outbound_instances, text_send
from tests.support.stack import service_env
from tests.support.streams import stream_messages

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import CampaignCompleted, DeliverySent
from switchboard.events.catalog.outbound import StartCampaign
from switchboard.events.ids import stable_hash
from switchboard.outbound.campaigns.state import campaign_key
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TOKENS = {"a": "300000021:crash-a", "b": "300000022:crash-b"}
RECIPIENTS = 360  # two bots at 30/s: six seconds of sending
REPLIES = 120  # on bot a, two to each of 60 chats


async def test_sigkill_of_the_campaign_leader_loses_nothing(nats_url: str, tmp_path: Path) -> None:
    box = Sandbox(SandboxConfig())
    for name, token in TOKENS.items():
        box.telegram.add_bot(token, f"crash_{name}_bot")
    async with serve(box.app()) as sandbox:
        bus = await Bus.connect(nats_url, name="setup")
        bots = [
            sandbox_account(sandbox, Channel.TELEGRAM, name, {"token": token})
            for name, token in TOKENS.items()
        ]
        await register(bus, *bots)
        env = service_env(nats_url, SWITCHBOARD_OUTBOUND_CAMPAIGN_LEASE_S=4)
        procs = start_outbound_instances(env, tmp_path, count=3)
        try:
            for p in procs.values():
                await p.ready()
            recipients = [str(40_000 + i) for i in range(RECIPIENTS)]
            await bus.publish(
                StartCampaign.model_validate(
                    {
                        "campaign_id": "crash",
                        "channel": "telegram",
                        "accounts": ["a", "b"],
                        "content": {"kind": "text", "text": "offer"},
                        "recipients": recipients,
                    }
                ),
                workspace_id="demo",
            )
            for i in range(REPLIES):
                await bus.publish(
                    text_send(f"c-{i}", str(5000 + i % 60), f"m{i}", account="a"),
                    workspace_id="demo",
                )

            def offers() -> list[float]:
                return [
                    r.at
                    for r in box.recorder.requests(provider="telegram", ok=True)
                    if r.params.get("text") == "offer"
                ]

            async def under_way() -> bool:
                return len(offers()) >= RECIPIENTS // 4

            await eventually(under_way, timeout=60)
            leases = await bus.kv("leases")
            lease = "outbound.campaign." + stable_hash(campaign_key("demo", "crash"))
            entry = await leases.get(lease)
            leader = str(orjson.loads(entry.value or b"{}")["owner"]).split("/")[0]
            procs[leader].kill()  # mid-campaign, with sends in flight
            killed_at = time.time()

            async def completed() -> CampaignCompleted | None:
                events = [d.model for d in await stream_messages(nats_url, "DELIVERY")]
                sent = {e.message_id for e in events if isinstance(e, DeliverySent)}
                done = [e for e in events if isinstance(e, CampaignCompleted)]
                replies = {m for m in sent if m.startswith("c-")}
                return done[0] if done and len(replies) == REPLIES else None

            done = await eventually(
                completed, timeout=120, interval=0.5, message="completed after the kill"
            )
        finally:
            for p in procs.values():
                p.stop()
            await bus.close()
    assert done is not None
    accepted = [r for r in box.recorder.requests(provider="telegram", ok=True)]
    offers_to = Counter(r.chat for r in accepted if r.params.get("text") == "offer")
    assert set(offers_to) == set(recipients)  # nobody lost
    duplicated = {chat for chat, n in offers_to.items() if n > 1}
    # A duplicate is a send whose provider call was in flight when its instance died: its
    # first copy was accepted just before the kill (calls take milliseconds), and there are
    # no more of them than the two bots can accept in that moment.
    for chat in duplicated:
        first = min(r.at for r in accepted if r.chat == chat and r.params.get("text") == "offer")
        assert killed_at - 1.0 <= first <= killed_at + 0.1, chat
    assert len(duplicated) <= 10
    assert (done.outcome, done.total, done.sent, done.failed) == (
        "completed",
        RECIPIENTS,
        RECIPIENTS,
        0,
    )
    replies = Counter(r.params.get("text") for r in accepted if r.chat and r.chat.startswith("50"))
    assert set(replies) == {f"m{i}" for i in range(REPLIES)}
    assert sum(replies.values()) - REPLIES <= 10
    # No assertion on 429s here: this test's sandbox shares the process that publishes,
    # polls and kills, and its late reads of the first requests can bunch them. Zero 429 is
    # asserted in test_outbound.py and measured by the benchmark; here a 429 only pauses.
