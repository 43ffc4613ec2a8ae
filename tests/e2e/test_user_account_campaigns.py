"""A campaign through a pool of two Telegram user accounts and a bot: 600 recipients spread
over the three within each account's limits; the campaign leader (an outbound process) is
SIGKILLed a quarter in and one user account is flood-limited half-way. The flood-limited
account drops out (nothing more goes through it; what it had queued moves to the others),
every recipient gets the message once, and the campaign completes with exact totals.

User-account sends go outbound -> bus -> the gateway (in this process) -> the real Telethon
adapter -> the sandbox's wire-level MTProto fake; bot sends go to the sandbox's Bot API."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.support.outbound import register, start_outbound_instances, telegram_shop
from tests.support.stack import API_KEY, service_env
from tests.support.streams import stream_messages
from tests.support.telethon_wire import (
    gateway_on_the_wire_fake,
    hand_over_session,
    telethon_gateway,
)
from tests.support.timing import max_in_window

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import CampaignCompleted, DeliveryFailed
from switchboard.events.catalog.mtproto import FloodWaited, SessionConnected
from switchboard.events.catalog.outbound import StartCampaign
from switchboard.events.ids import stable_hash
from switchboard.mtproto.app import create_app as create_gateway
from switchboard.outbound.campaigns.pool import MOVED
from switchboard.outbound.campaigns.state import campaign_key
from switchboard.runtime.accounts import Account
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TOKEN = "300000031:pool-bot"
RECIPIENTS = 600
USER_RATE = 10  # sends per second per user account (set on the accounts)
BOT_RATE = 30  # Telegram's bot limit, the default
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _name(i: int) -> str:
    return f"pool_c{i:03d}"


@pytest.mark.timeout(600)
async def test_a_pool_of_user_accounts_and_a_bot_sends_each_recipient_once(
    nats_url: str, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Sandbox(SandboxConfig())
    bot = box.telegram.add_bot(TOKEN, "pool_shop_bot")
    await gateway_on_the_wire_fake(box, monkeypatch)
    fake = box.mtproto
    senders = {
        "ann": fake.add_user("15550010001", first_name="Ann")[0],
        "bob": fake.add_user("15550010002", first_name="Bob")[0],
    }
    people = []
    for i in range(RECIPIENTS):
        people.append(fake.add_user(f"1555002{i:04d}", username=_name(i))[0])
        box.telegram.add_chat(bot, 70_000 + i, "private", username=_name(i))
    recipients = [f"@{_name(i)}" for i in range(RECIPIENTS)]

    async with serve(box.app()) as sandbox, AsyncExitStack() as stack:
        bus = await Bus.connect(nats_url, name="setup")
        stack.push_async_callback(bus.close)
        pool = [
            Account(
                channel=Channel.MTPROTO,
                id=sid,
                workspace_id="demo",
                settings={"status": "active", "limits": {"account": [USER_RATE, 1]}},
            )
            for sid in senders
        ]
        await register(bus, telegram_shop(sandbox, TOKEN), *pool)
        gateway = await stack.enter_async_context(
            serve_app(
                create_gateway(
                    telethon_gateway(
                        nats_url,
                        postgres_url,
                        admin_token="pool-operator",
                        api_keys=f"{API_KEY}=demo",
                    )
                )
            )
        )
        async with httpx.AsyncClient(base_url=gateway, headers=AUTH, timeout=30) as http:
            for sid, user in senders.items():
                session = box.mtproto_wire.issue_session(user)["session"]
                await hand_over_session(http, sid, session)

        async def connected() -> bool:
            events = await stream_messages(nats_url, "MTPROTO")
            up = {d.model.session_id for d in events if isinstance(d.model, SessionConnected)}
            return up >= set(senders)

        await eventually(connected, timeout=60, message="both sessions connected")

        env = service_env(nats_url, SWITCHBOARD_OUTBOUND_CAMPAIGN_LEASE_S=4)
        procs = start_outbound_instances(env, tmp_path)
        stack.callback(lambda: [p.stop() for p in procs.values()])
        for proc in procs.values():
            await proc.ready()

        await bus.publish(
            StartCampaign.model_validate(
                {
                    "campaign_id": "pool",
                    "channel": "mtproto",
                    "accounts": list(senders),
                    "pool": [{"channel": "telegram", "account": "shop"}],
                    "content": {"kind": "text", "text": "offer"},
                    "recipients": recipients,
                }
            ),
            workspace_id="demo",
        )

        def by_user_account() -> dict[str, list[dict[str, Any]]]:
            return {
                sid: [
                    m
                    for person in people
                    for m in fake.messages(sender, person)
                    if m["text"] == "offer"
                ]
                for sid, sender in senders.items()
            }

        def bot_offers() -> list[Any]:
            return [
                r
                for r in box.recorder.requests(provider="telegram", method="sendMessage")
                if r.params.get("text") == "offer"
            ]

        def sent_so_far() -> int:
            return sum(len(v) for v in by_user_account().values()) + sum(
                1 for r in bot_offers() if r.ok
            )

        async def reached(n: int) -> bool:
            return sent_so_far() >= n

        # A quarter in: SIGKILL the campaign's leader, with sends in flight.
        await eventually(lambda: reached(RECIPIENTS // 4), timeout=90, message="under way")
        leases = await bus.kv("leases")
        lease = await leases.get("outbound.campaign." + stable_hash(campaign_key("demo", "pool")))
        leader = str(orjson.loads(lease.value or b"{}")["owner"]).split("/")[0]
        procs[leader].kill()
        killed_at = time.time()
        # Half-way: Telegram flood-limits bob for two minutes (longer than a campaign waits).
        await eventually(lambda: reached(RECIPIENTS // 2), timeout=120, message="half-way")
        fake.add_fault(user=senders["bob"], method="messages.sendMessage", seconds=120, times=1)

        async def completed() -> CampaignCompleted | None:
            events = [d.model for d in await stream_messages(nats_url, "DELIVERY")]
            done = [e for e in events if isinstance(e, CampaignCompleted)]
            return done[0] if done else None

        done = await eventually(completed, timeout=240, interval=1.0, message="completed")
        assert done is not None
        mtproto_events = [d.model for d in await stream_messages(nats_url, "MTPROTO")]
        deliveries = [d.model for d in await stream_messages(nats_url, "DELIVERY")]

    assert (done.outcome, done.total, done.sent, done.failed) == ("completed", 600, 600, 0)
    users = by_user_account()
    received: Counter[str] = Counter()
    for sender in senders.values():
        for i, person in enumerate(people):
            received[recipients[i]] += sum(
                1 for m in fake.messages(sender, person) if m["text"] == "offer"
            )
    accepted = [r for r in bot_offers() if r.ok]
    # The sandbox names the chat by its id; chat 70000 + i is recipient i.
    bot_to = Counter(recipients[int(r.chat) - 70_000] for r in accepted)
    # User-account sends are exactly once, across the kill: the gateway answers a repeat of
    # a message id from what it sent. A bot call in flight at the kill may be repeated (the
    # Bot API has no idempotency key): only such calls, accepted just before the kill.
    assert all(n <= 1 for n in received.values())
    for who, n in bot_to.items():
        if n > 1:
            chat = str(70_000 + recipients.index(who))
            first = min(r.at for r in accepted if str(r.chat) == chat)
            assert killed_at - 1.0 <= first <= killed_at + 0.1, who
    everyone = received + Counter(set(bot_to))  # a bot repeat at the kill counts once
    assert set(everyone) == set(recipients)
    assert all(n == 1 for n in everyone.values()), {k: n for k, n in everyone.items() if n != 1}
    # Bob was flood-limited half-way: nothing went through him after, and what he had
    # queued went through the others.
    flood = [e for e in mtproto_events if isinstance(e, FloodWaited) and e.session_id == "bob"]
    assert len(flood) == 1
    assert all(m["date"] <= flood[0].at.timestamp() for m in users["bob"])
    moved = [e for e in deliveries if isinstance(e, DeliveryFailed) and e.error_code == MOVED]
    assert moved
    assert {e.account for e in moved} == {"bob"}
    # Within every account's limits: the user accounts (Telegram's clock, whole seconds)
    # and the bot (the sandbox answered no 429).
    for sid in senders:
        per_second = Counter(int(m["date"]) for m in users[sid])
        assert max(per_second.values(), default=0) <= USER_RATE, sid
    assert [r for r in bot_offers() if r.status == 429] == []
    assert max_in_window([r.at for r in accepted], 1.0) <= BOT_RATE
    assert len(users["ann"]) > 0
    assert len(users["bob"]) > 0
