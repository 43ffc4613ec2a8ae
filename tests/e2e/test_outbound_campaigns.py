"""Campaigns over real NATS against the sandbox Telegram, with two outbound instances: the
HTTP API, batches arriving out of order, pinned and spread recipients, exact totals, progress
events, pause / resume / cancel, and a reply that overtakes a running broadcast."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.support.outbound import register, sandbox_account, text_send
from tests.support.stack import API_KEY, OTHER_KEY, service_env
from tests.support.streams import keep_only, stream_messages

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import ContactErased
from switchboard.events.catalog.outbound import (
    AddCampaignRecipients,
    OutText,
    SendBulk,
    StartCampaign,
)
from switchboard.outbound.app import create_app
from switchboard.outbound.campaigns.state import CampaignStore, campaign_key
from switchboard.outbound.erasure import identity_hash, marker
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig, SlidingWindow
from switchboard.sandbox.testing import serve

pytestmark = pytest.mark.e2e
TOKENS = {"a": "300000011:campaign-a", "b": "300000012:campaign-b"}
AUTH = {"Authorization": f"Bearer {API_KEY}"}
RATE = 100  # per bot, here and in the sandbox: a campaign of a thousand takes seconds


@dataclass
class Env:
    box: Sandbox
    urls: list[str]
    nats_url: str

    def campaign_chats(self, text: str) -> Counter[str]:
        """Recipients (chat ids) the sandbox accepted a message with ``text`` for."""
        return Counter(
            str(r.chat)
            for r in self.box.recorder.requests(provider="telegram", method="sendMessage", ok=True)
            if r.params.get("text") == text
        )


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.config.telegram.limits.bot = SlidingWindow(limit=RATE, window=1.0)
    for name, token in TOKENS.items():
        box.telegram.add_bot(token, f"campaign_{name}_bot")
    async with serve(box.app()) as sandbox, AsyncExitStack() as stack:
        # Two instances and the sandbox share this test's event loop, whose lag would be
        # jitter at the provider: a wider margin than a deployment's keeps that out of the
        # 429 check (the benchmark measures the default margin with separate processes).
        for key, value in service_env(
            nats_url,
            SWITCHBOARD_OUTBOUND_CAMPAIGN_PROGRESS_S=0.5,
            SWITCHBOARD_OUTBOUND_LIMIT_MARGIN=0.1,
            SWITCHBOARD_OUTBOUND_CAMPAIGN_RENEW_S=1,  # the leader renews its records each second
        ).items():
            monkeypatch.setenv(key, value)
        bus = await Bus.connect(nats_url, name="setup")
        limits = {"bot": [RATE, 1]}
        await register(
            bus,
            *(
                sandbox_account(sandbox, Channel.TELEGRAM, name, {"token": token}, limits=limits)
                for name, token in TOKENS.items()
            ),
        )
        await bus.close()
        urls = [
            await stack.enter_async_context(serve_app(create_app(load_settings(OutboundSettings))))
            for _ in range(2)
        ]
        yield Env(box, urls, nats_url)


async def _events(nats_url: str, name: str) -> list[Any]:
    return [d.model for d in await stream_messages(nats_url, "DELIVERY") if d.model.name == name]


def _completed(nats_url: str, campaign: str) -> Callable[[], Any]:
    async def check() -> Any:
        done = [
            e
            for e in await _events(nats_url, "delivery.campaign_completed")
            if e.campaign_id == campaign
        ]
        return done[0] if done else None

    return check


async def test_a_campaign_completes_with_exact_totals(env: Env) -> None:
    """300 recipients in three batches (the last one before the middle one), 10 pinned to
    bot b, one that blocked both bots: each recipient gets the message once, the accounts
    share the rest, and the completion counts 299 sent and 1 failed."""
    recipients = [str(10_000 + i) for i in range(300)]
    for token in TOKENS.values():
        env.box.telegram.add_chat(token, 10_007, "private")
        env.box.telegram.block_chat(token, 10_007)
    pinned = [{"recipient": r, "account": "b"} for r in recipients[:10]]
    bus = await Bus.connect(env.nats_url, name="producer")
    try:
        start = StartCampaign.model_validate(
            {
                "campaign_id": "exact",
                "channel": "telegram",
                "accounts": ["a", "b"],
                "content": {"kind": "text", "text": "exact"},
                "recipients": pinned + recipients[10:100],
                "final": False,
            }
        )
        await bus.publish(start, workspace_id="demo")
        last = AddCampaignRecipients.model_validate(
            {"campaign_id": "exact", "batch": 2, "recipients": recipients[200:], "final": True}
        )
        await bus.publish(last, workspace_id="demo")
        middle = AddCampaignRecipients.model_validate(
            {"campaign_id": "exact", "batch": 1, "recipients": recipients[100:200]}
        )
        await bus.publish(middle, workspace_id="demo")
    finally:
        await bus.close()
    done = await eventually(
        _completed(env.nats_url, "exact"), timeout=60, interval=0.5, message="completion"
    )
    assert (done.outcome, done.total, done.sent, done.failed, done.cancelled) == (
        "completed",
        300,
        299,
        1,
        0,
    )
    assert done.failures == {"telegram_403": 1}
    chats = env.campaign_chats("exact")
    assert set(chats) == set(recipients) - {"10007"}
    assert max(chats.values()) == 1  # nobody twice
    by_bot = Counter(
        r.account
        for r in env.box.recorder.requests(provider="telegram", method="sendMessage", ok=True)
    )
    assert min(by_bot.values()) >= 100  # both bots carried their share
    for r in env.box.recorder.requests(provider="telegram", ok=True):
        if r.chat in recipients[:10]:
            assert r.account == TOKENS["b"].split(":")[0], "a pinned recipient went elsewhere"
    sent = await _events(env.nats_url, "delivery.sent")
    assert {e.campaign_id for e in sent} == {"exact"}
    assert {e.message_id.rsplit(":", 2)[0] for e in sent} == {"exact"}
    async with httpx.AsyncClient() as http:
        state = (await http.get(f"{env.urls[1]}/v1/campaigns/exact", headers=AUTH)).json()
        # A completed campaign has nothing to pause, resume or cancel: each was answered 202
        # and silently ignored by the campaign; now a 409 naming its status.
        for action in ("pause", "resume", "cancel"):
            r = await http.post(f"{env.urls[0]}/v1/campaigns/exact/{action}", headers=AUTH)
            assert (r.status_code, r.json()["code"]) == (409, "campaign_final"), r.text
            assert "completed" in r.json()["detail"], r.text
    assert (state["status"], state["sent"], state["failed"], state["remaining"]) == (
        "completed",
        299,
        1,
        0,
    )


async def test_a_campaign_starting_after_its_records_would_be_forgotten_still_runs(
    env: Env,
) -> None:
    """The ``sends`` bucket forgets a key 8 days after its last write, and a campaign's
    records were written once, when it was made: a campaign starting later than that
    vanished (nothing sent, its state gone). Here the bucket keeps a key 3 s and the leader
    renews the records every second: a campaign starting in 8 s runs, once to each."""
    recipients = [str(30_000 + i) for i in range(5)]
    at = datetime.now(UTC) + timedelta(seconds=8)
    bus = await Bus.connect(env.nats_url, name="producer")
    try:
        await keep_only(bus, "KV_sends", 3.0)
        start = StartCampaign.model_validate(
            {
                "campaign_id": "later",
                "channel": "telegram",
                "accounts": ["a"],
                "content": {"kind": "text", "text": "later"},
                "recipients": recipients,
                "not_before": at.isoformat(),
            }
        )
        await bus.publish(start, workspace_id="demo")
    finally:
        await bus.close()
    done = await eventually(
        _completed(env.nats_url, "later"), timeout=60, interval=0.5, message="completion"
    )
    assert (done.outcome, done.total, done.sent) == ("completed", 5, 5)
    chats = env.campaign_chats("later")
    assert set(chats) == set(recipients)
    assert max(chats.values()) == 1
    sent_at = [
        r.at
        for r in env.box.recorder.requests(provider="telegram", method="sendMessage", ok=True)
        if r.params.get("text") == "later"
    ]
    assert min(sent_at) >= at.timestamp()  # not before its start


async def test_a_recipient_erased_before_the_campaign_reaches_them_gets_nothing(
    env: Env,
) -> None:
    """A batch waits for its campaign's start; the CRM erases one of its recipients: the
    stored batch names them by the marker from then on, the campaign sends to everyone
    else and counts their position as failed (erased) without a call. Before, the
    erasure never reached campaigns: the erased person got the broadcast."""
    bus = await Bus.connect(env.nats_url, name="producer")
    store = CampaignStore(await bus.kv("sends"))
    key = campaign_key("demo", "forget")
    try:
        later = AddCampaignRecipients.model_validate(
            {"campaign_id": "forget", "batch": 1, "recipients": ["30001", "30002"], "final": True}
        )
        await bus.publish(later, workspace_id="demo")

        async def stored() -> list[Any]:
            return await store.batch(key, 1)

        await eventually(stored, timeout=30, message="the batch stored before the start")
        hashes = [identity_hash("demo", "telegram", "30002")]
        await bus.publish(
            ContactErased(contact_id="ct_x", identity_hashes=hashes), workspace_id="demo"
        )

        async def scrubbed() -> bool:
            return [r.recipient for r in await store.batch(key, 1)] == ["30001", marker(hashes[0])]

        await eventually(scrubbed, timeout=30, message="the batch scrubbed")
        start = StartCampaign.model_validate(
            {
                "campaign_id": "forget",
                "channel": "telegram",
                "accounts": ["a"],
                "content": {"kind": "text", "text": "forget"},
                "recipients": ["30000"],
                "final": False,
            }
        )
        await bus.publish(start, workspace_id="demo")
    finally:
        await bus.close()
    done = await eventually(
        _completed(env.nats_url, "forget"), timeout=60, interval=0.5, message="completion"
    )
    assert (done.total, done.sent, done.failed) == (3, 2, 1)
    assert done.failures == {"erased": 1}
    assert set(env.campaign_chats("forget")) == {"30000", "30001"}
    dumped = "".join(str(e) for e in await _events(env.nats_url, "delivery.failed"))
    assert "30002" not in dumped


async def test_pause_resume_cancel_and_a_reply_overtakes_the_broadcast(env: Env) -> None:
    """A 1000-recipient campaign and 400 more bulk sends on one bot; a reply published
    meanwhile reaches the sandbox within a second; pause holds the campaign, resume goes on,
    cancel ends it with sent + failed + cancelled = total, and nothing got a 429."""
    recipients = [str(20_000 + i) for i in range(1000)]
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{env.urls[0]}/v1/campaigns",
            headers=AUTH,
            json={
                "campaign_id": "sale",
                "channel": "telegram",
                "accounts": ["a"],
                "content": {"kind": "text", "text": "sale"},
                "recipients": recipients[:600],
                "final": False,
                "title": "Sale",
            },
        )
        assert r.status_code == 202, r.text
        r = await http.post(
            f"{env.urls[1]}/v1/campaigns/sale/recipients",
            headers=AUTH,
            json={"batch": 1, "recipients": recipients[600:], "final": True},
        )
        assert r.status_code == 202, r.text

        async def known() -> bool:
            r = await http.get(f"{env.urls[1]}/v1/campaigns/sale", headers=AUTH)
            return r.status_code == 200

        await eventually(known, timeout=10, message="the campaign is known")
        taken = await http.post(
            f"{env.urls[0]}/v1/campaigns",
            headers={"Authorization": f"Bearer {OTHER_KEY}"},
            json={"campaign_id": "sale", "channel": "telegram", "accounts": ["a"],
                  "content": {"kind": "text", "text": "x"}},
        )  # fmt: skip
        # Campaign ids are per workspace, so "sale" is free for the other workspace; but the
        # account "a" is demo's, which does not exist for it.
        assert taken.status_code == 404, taken.text
        bad = await http.post(f"{env.urls[0]}/v1/campaigns", headers=AUTH, json={"accounts": []})
        assert bad.status_code == 422
        long = await http.post(
            f"{env.urls[0]}/v1/campaigns",
            headers=AUTH,
            json={"campaign_id": "long", "channel": "telegram", "accounts": ["a"],
                  "content": {"kind": "text", "text": "x" * 4097}},
        )  # fmt: skip
        assert long.status_code == 422, long.text  # every send would fail: none is made
        assert (long.json()["code"], long.json()["field"]) == ("too_long", "content.text")

        bus = await Bus.connect(env.nats_url, name="producer")
        try:
            for i in range(400):  # a bulk backlog beside the campaign, in the same lane
                await bus.publish(
                    SendBulk(
                        message_id=f"news-{i}",
                        channel=Channel.TELEGRAM,
                        account="a",
                        recipient=str(30_000 + i),
                        content=OutText(text="news"),
                    ),
                    workspace_id="demo",
                )

            async def flowing() -> bool:
                return sum(env.campaign_chats("sale").values()) >= 100

            await eventually(flowing, timeout=30, message="the campaign is sending")
            sent_before = sum(env.campaign_chats("sale").values())
            await bus.publish(
                text_send("reply-1", "777", "a reply", account="a"),
                workspace_id="demo",
            )

            async def replied() -> int | None:
                found = env.box.recorder.requests(provider="telegram", chat="777", ok=True)
                return sum(env.campaign_chats("sale").values()) if found else None

            sent_by_then = await eventually(replied, timeout=60, interval=0.05)
        finally:
            await bus.close()
        # The reply overtakes the broadcast's backlog: counted in messages, not seconds,
        # fewer than half of the queued campaign sends left before it, where waiting its
        # turn would have let every one of them go first. Measured: 8 of ~900 on a quiet
        # machine; 233 with four test processes on two cores, where the reply's few round
        # trips wait for CPU while the campaign's pipelined sends keep the provider's pace
        # (a quarter, the bound before, failed there).
        assert sent_by_then is not None
        overtaken = sent_by_then - sent_before
        assert overtaken < (1000 - sent_before) / 2, f"{overtaken} campaign sends went first"

        r = await http.post(f"{env.urls[1]}/v1/campaigns/sale/pause", headers=AUTH)
        assert r.status_code == 202
        still = Steady(lambda: sum(env.campaign_chats("sale").values()))
        paused_at = await eventually(still.check, timeout=20, interval=0.6, message="paused")
        assert paused_at is not None
        status = (await http.get(f"{env.urls[0]}/v1/campaigns/sale", headers=AUTH)).json()
        assert status["status"] == "paused"
        assert 100 <= paused_at < 1000

        r = await http.post(f"{env.urls[0]}/v1/campaigns/sale/resume", headers=AUTH)
        assert r.status_code == 202

        async def resumed() -> bool:
            return sum(env.campaign_chats("sale").values()) >= paused_at + 40

        await eventually(resumed, timeout=20, message="resumed")
        r = await http.post(f"{env.urls[0]}/v1/campaigns/sale/cancel", headers=AUTH)
        assert r.status_code == 202
        done = await eventually(
            _completed(env.nats_url, "sale"), timeout=30, interval=0.5, message="cancelled"
        )
        final = (await http.get(f"{env.urls[1]}/v1/campaigns/sale", headers=AUTH)).json()
        assert (final["status"], final["outcome"]["outcome"], final["remaining"]) == (
            "completed",
            "cancelled",
            0,
        )
        assert (final["sent"], final["cancelled"]) == (done.sent, done.cancelled)
        nobody = await http.get(
            f"{env.urls[0]}/v1/campaigns/sale", headers={"Authorization": f"Bearer {OTHER_KEY}"}
        )
        assert nobody.status_code == 404

    chats = env.campaign_chats("sale")
    assert done.outcome == "cancelled"
    assert done.total == 1000
    assert done.sent == len(chats) == sum(chats.values())  # each once, and counted exactly
    assert done.sent + done.failed + done.cancelled == 1000
    assert 0 < done.cancelled < 1000 - paused_at
    assert env.box.recorder.requests(provider="telegram", status=429) == []
    statuses = [
        e.status
        for e in await _events(env.nats_url, "delivery.campaign_status")
        if e.campaign_id == "sale"
    ]
    assert statuses == ["running", "paused", "running", "cancelled"]
    progress = [
        e
        for e in await _events(env.nats_url, "delivery.campaign_progress")
        if e.campaign_id == "sale"
    ]
    assert len(progress) >= 3
    assert {p.status for p in progress} >= {"running", "paused"}
    for p in progress:
        assert p.total in (None, 1000)
        assert p.sent + p.failed + p.remaining <= 1000
    moving = [p for p in progress if p.rate_per_s > 0]
    assert moving
    assert all(p.eta_s is not None for p in moving)


@dataclass
class Steady:
    """A condition: the count did not change since the previous look."""

    count: Callable[[], int]
    last: int = -1

    async def check(self) -> int | None:
        now = self.count()
        seen, self.last = self.last, now
        return now if seen == now else None


async def test_a_campaign_from_the_bus_whose_content_does_not_fit_is_cancelled_at_once(
    env: Env,
) -> None:
    """The HTTP route answers 422 for content the channel cannot carry; a start from the
    bus (the CRM's segment campaigns, a flow's campaign step) was fanned out and failed once
    per recipient. Now it is cancelled at once, saying why, and sends nothing."""
    unparsable = OutText(text="<b>unclosed", parse_mode="HTML")
    start = StartCampaign(campaign_id="unfit", channel=Channel.TELEGRAM, accounts=("a",),
                          content=unparsable, recipients=[str(20_000 + i) for i in range(50)],
                          final=True)  # fmt: skip
    bus = await Bus.connect(env.nats_url, name="producer")
    await bus.publish(start, workspace_id="demo")
    await bus.close()
    done = await eventually(
        _completed(env.nats_url, "unfit"), timeout=60, interval=0.5, message="completion"
    )
    assert (done.outcome, done.total, done.sent, done.failed, done.cancelled) == (
        "cancelled", 50, 0, 0, 50
    )  # fmt: skip
    [status] = [e for e in await _events(env.nats_url, "delivery.campaign_status")
                if e.campaign_id == "unfit"]  # fmt: skip
    assert (status.status, status.reason) == (
        "cancelled",
        "unsupported_content: Telegram cannot parse this HTML: can't find end tag "
        'corresponding to start tag "b"',
    ), status.reason
    assert not await _events(env.nats_url, "delivery.failed")
    assert not env.box.recorder.requests(provider="telegram", method="sendMessage")
    async with httpx.AsyncClient() as http:
        state = (await http.get(f"{env.urls[0]}/v1/campaigns/unfit", headers=AUTH)).json()
    assert (state["outcome"]["outcome"], state["reason"]) == ("cancelled", status.reason)
