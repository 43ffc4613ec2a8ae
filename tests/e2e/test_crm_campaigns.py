"""Campaigns to a CRM segment over real NATS and Postgres: the segment (channel, account,
tags, lead stage and assignee, activity) expands into recipients pinned to the account each
person wrote to, never an erased person or another workspace's, and reaches outbound as a
start command plus recipient batches."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.conv import T0, publish_all, received
from tests.support.crm import Crm
from tests.support.stack import OTHER_KEY
from tests.support.streams import stream_messages

from switchboard.crm.campaigns import CampaignRequest, start_campaign
from switchboard.events import Decoded, decode_message
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import StartSegmentCampaign
from switchboard.events.catalog.outbound import AddCampaignRecipients, StartCampaign
from switchboard.runtime.bus import Bus
from switchboard.runtime.db import create_pool
from switchboard.runtime.testing import eventually

pytestmark = pytest.mark.e2e
TEXT = {"kind": "text", "text": "Spring sale: 20% off"}


async def _outbound(nats_url: str) -> list[Decoded]:
    """Every command in the OUTBOUND work queue (read by sequence: no consumer takes them)."""
    bus = await Bus.connect(nats_url, name="test-reader")
    try:
        state = (await bus.js.stream_info("OUTBOUND")).state
        out = []
        for seq in range(state.first_seq, state.last_seq + 1):
            msg = await bus.js.get_msg("OUTBOUND", seq)
            out.append(decode_message(msg.subject, dict(msg.headers or {}), msg.data or b""))
        return out
    finally:
        await bus.close()


def _recipients(commands: list[Decoded]) -> list[tuple[str | None, str]]:
    return [
        (r.account, r.recipient)
        for d in commands
        if isinstance(d.model, StartCampaign | AddCampaignRecipients)
        for r in d.model.recipients
    ]


async def _people(crm: Crm) -> dict[str, Any]:
    """Publish the population and wait until the CRM knows everyone."""
    await publish_all(
        crm.nats_url,
        [
            received(Channel.TELEGRAM, "bot1", "t1", "hi", 1, name="Tom"),
            received(Channel.TELEGRAM, "bot1", "t2", "price?", 2, name="Tina"),
            received(Channel.TELEGRAM, "bot1", "t3", "hello", 3, name="Theo"),
            received(Channel.TELEGRAM, "bot2", "t4", "hey", 40, name="Tara"),
            received(Channel.WHATSAPP, "wa1", "4917600000005", "hallo", 5, name="Willa"),
        ],
    )
    await publish_all(
        crm.nats_url,
        [received(Channel.TELEGRAM, "bot1", "t9", "hi", 6, name="Other")],
        workspace="other",
    )

    async def everyone() -> dict[str, Any] | None:
        contacts = (await crm.get("/v1/contacts"))["items"]
        leads = (await crm.get("/v1/leads"))["items"]
        if len(contacts) < 5 or len(leads) < 5:
            return None
        return {c["display_name"]: c for c in contacts}

    people: dict[str, Any] = await eventually(everyone, timeout=20, message="contacts")

    async def theirs() -> bool:
        other = {"Authorization": f"Bearer {OTHER_KEY}"}
        r = await crm.http.get(f"{crm.url}/v1/contacts", headers=other)
        return len(r.json()["items"]) == 1

    await eventually(theirs, timeout=20, message="the other workspace's contact")
    for name in ("Tom", "Tara"):
        r = await crm.post(f"/v1/contacts/{people[name]['id']}", {"tags_added": ["vip"]})
        assert r.status_code == 200, r.text
    lead = (await crm.get("/v1/leads", contact_id=people["Tina"]["id"]))["items"][0]
    assert (await crm.post(f"/v1/leads/{lead['id']}/stage", {"to_stage": "qualified"})).is_success
    assert (await crm.post(f"/v1/leads/{lead['id']}/assign", {"assignee": "ann"})).is_success
    assert (await crm.post(f"/v1/contacts/{people['Theo']['id']}/erase", {})).is_success
    return people


async def test_a_segment_becomes_pinned_recipients_in_outbound(crm: Crm) -> None:
    await _people(crm)

    r = await crm.post(
        "/v1/campaigns",
        {"campaign_id": "spring", "title": "Spring", "segment": {"channel": "telegram"}},
    )
    assert r.status_code == 422  # no content

    r = await crm.post(
        "/v1/campaigns",
        {"campaign_id": "spring", "segment": {"channel": "telegram"}, "content": TEXT},
    )
    assert r.status_code == 202, r.text
    assert r.json() == {
        "campaign_id": "spring",
        "recipients": 3,
        "batches": 1,
        "accounts": ["bot1", "bot2"],
    }
    [start] = await _outbound(crm.nats_url)
    assert isinstance(start.model, StartCampaign)
    assert start.envelope.workspace_id == "demo"
    assert (start.model.channel, start.model.accounts) == (Channel.TELEGRAM, ("bot1", "bot2"))
    assert (start.model.final, start.model.expected_total) == (True, 3)
    assert start.model.content.model_dump(include=set(TEXT)) == TEXT
    # Theo was erased; t9 is another workspace's; Willa is on another channel
    assert _recipients([start]) == [("bot1", "t1"), ("bot1", "t2"), ("bot2", "t4")]

    segments = {
        "vip": ({"channel": "telegram", "tags": ["vip"]}, [("bot1", "t1"), ("bot2", "t4")]),
        "bot2": ({"channel": "telegram", "account": "bot2"}, [("bot2", "t4")]),
        "ann": (
            {"channel": "telegram", "stage": "qualified", "assignee": "ann"},
            [("bot1", "t2")],
        ),
        "recent": (
            {"channel": "telegram", "updated_since": (T0.replace(second=30)).isoformat()},
            [("bot2", "t4")],
        ),
    }
    for campaign_id, (segment, expected) in segments.items():
        r = await crm.post(
            "/v1/campaigns", {"campaign_id": campaign_id, "segment": segment, "content": TEXT}
        )
        assert r.status_code == 202, (campaign_id, r.text)
        sent = [d for d in await _outbound(crm.nats_url) if d.model.campaign_id == campaign_id]  # type: ignore[attr-defined]
        assert _recipients(sent) == expected, campaign_id

    # bad input: precise 4xx, nothing published
    published = len(await _outbound(crm.nats_url))
    for body, status, code in (
        (
            {"segment": {"channel": "telegram", "stage": "nonsense"}, "content": TEXT},
            422,
            "unknown_stage",
        ),
        ({"segment": {"channel": "viber"}, "content": TEXT}, 422, "empty_segment"),
        (
            {"segment": {"channel": "telegram", "tags": ["nobody"]}, "content": TEXT},
            422,
            "empty_segment",
        ),
        ({"segment": {"channel": "pigeon"}, "content": TEXT}, 422, None),
        # a time without a timezone names its field (it used to pass here and fail later)
        (
            {
                "segment": {"channel": "telegram"},
                "content": TEXT,
                "not_before": "2099-01-01T09:00:00",
            },
            422,
            None,
        ),
    ):
        r = await crm.post("/v1/campaigns", body)
        assert r.status_code == status, r.text
        if code:
            assert r.json()["code"] == code
        if "not_before" in body:
            assert [e["path"] for e in r.json()["errors"]] == ["body.not_before"], r.text
    r = await crm.post(
        "/v1/campaigns", {"segment": {"channel": "telegram"}, "content": TEXT}, auth={}
    )
    assert r.status_code == 401
    assert len(await _outbound(crm.nats_url)) == published

    # the other workspace's key sees only its own people
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    r = await crm.post(
        "/v1/campaigns",
        {"campaign_id": "theirs", "segment": {"channel": "telegram"}, "content": TEXT},
        auth=other,
    )
    assert r.status_code == 202, r.text
    theirs = [d for d in await _outbound(crm.nats_url) if d.model.campaign_id == "theirs"]  # type: ignore[attr-defined]
    assert _recipients(theirs) == [("bot1", "t9")]
    assert theirs[0].envelope.workspace_id == "other"


async def test_a_large_segment_goes_out_in_batches_from_one_snapshot(crm: Crm) -> None:
    await _people(crm)
    request = CampaignRequest.model_validate(
        {"campaign_id": "big", "segment": {"channel": "telegram"}, "content": TEXT}
    )
    pool = await create_pool(crm.postgres_url, 2, schema="crm")
    bus = await Bus.connect(crm.nats_url, name="test-campaign")
    try:
        async with pool.acquire() as conn:
            started = await start_campaign(conn, bus, "demo", request, chunk=2)
    finally:
        await bus.close()
        await pool.close()
    assert (started.recipients, started.batches) == (3, 2)
    start, more = await _outbound(crm.nats_url)
    assert isinstance(start.model, StartCampaign)
    assert isinstance(more.model, AddCampaignRecipients)
    assert (start.model.final, start.model.expected_total, len(start.model.recipients)) == (
        False,
        3,
        2,
    )
    assert (more.model.batch, more.model.final, len(more.model.recipients)) == (1, True, 1)
    assert _recipients([start, more]) == [("bot1", "t1"), ("bot1", "t2"), ("bot2", "t4")]


async def test_a_campaign_over_the_bus_starts_or_is_refused_as_over_http(crm: Crm) -> None:
    """``crm.start_campaign`` runs what ``POST /v1/campaigns`` runs: the segment reaches
    outbound, and an unknown stage or an empty segment is a ``crm.command_rejected``."""
    await _people(crm)
    segment = {"channel": "telegram", "tags": ["vip"]}
    commands = [
        StartSegmentCampaign.model_validate(
            {"campaign_id": campaign_id, "segment": {**segment, **extra}, "content": TEXT}
        )
        for campaign_id, extra in (
            ("bus-vip", {}),
            ("bus-stage", {"stage": "nonsense"}),
            ("bus-empty", {"tags": ["nobody"]}),
        )
    ]
    await publish_all(crm.nats_url, commands)

    async def rejections() -> list[Any] | None:
        crm_events = await stream_messages(crm.nats_url, "CRM")
        found = [d.model for d in crm_events if d.model.name == "crm.command_rejected"]
        return found if len(found) == 2 else None

    rejected = await eventually(rejections, message="two rejections")
    assert sorted((r.status, r.command) for r in rejected) == [(422, "crm.start_campaign")] * 2
    assert any("'nonsense' is not one of" in r.reason for r in rejected)

    # The campaign's own segment may still be on its way when both refusals are in.
    async def vip() -> list[tuple[str | None, str]]:
        sent = [d for d in await _outbound(crm.nats_url) if d.model.campaign_id == "bus-vip"]  # type: ignore[attr-defined]
        found = _recipients(sent)
        return found if len(found) >= 2 else []

    assert await eventually(vip, message="bus-vip's recipients") == [("bot1", "t1"), ("bot2", "t4")]


async def test_a_campaign_id_started_with_one_content_is_refused_to_another(crm: Crm) -> None:
    """A caller retrying ``POST /v1/campaigns`` with its ``campaign_id`` gets the campaign
    again (202, nothing new for outbound), and another content or segment under the id is a
    422 naming the conflict, over HTTP and over the bus. Before, the CRM answered 202
    "started" to the other content, whose start JetStream then dropped as a duplicate (or
    outbound refused to the DLQ): the caller was told a campaign went out that never did."""
    await _people(crm)
    body = {"campaign_id": "spring", "segment": {"channel": "telegram", "tags": ["vip"]},
            "content": TEXT}  # fmt: skip
    # an id whose first request was refused is free for a corrected one
    empty = {**body, "campaign_id": "fixed", "segment": {"channel": "telegram", "tags": ["x"]}}
    r = await crm.post("/v1/campaigns", empty)
    assert (r.status_code, r.json()["code"]) == (422, "empty_segment"), r.text
    assert (await crm.post("/v1/campaigns", {**body, "campaign_id": "fixed"})).status_code == 202
    first = await crm.post("/v1/campaigns", body)
    assert first.status_code == 202, first.text
    again = await crm.post("/v1/campaigns", body)
    assert (again.status_code, again.json()) == (202, first.json())
    for other in (
        {**body, "content": {"kind": "text", "text": "Autumn sale"}},
        {**body, "segment": {"channel": "telegram", "tags": ["nobody-else"]}},
    ):
        r = await crm.post("/v1/campaigns", other)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "idempotency_conflict"
        assert "spring" in r.json()["detail"]
    # ids are per workspace: another workspace's "spring" is a campaign of its own
    theirs = {**body, "segment": {"channel": "telegram"}, "content": {"kind": "text", "text": "x"}}
    r = await crm.post("/v1/campaigns", theirs, auth={"Authorization": f"Bearer {OTHER_KEY}"})
    assert (r.status_code, r.json()["recipients"]) == (202, 1), r.text
    # over the bus, the same
    changed = StartSegmentCampaign.model_validate(
        {**body, "content": {"kind": "text", "text": "Autumn sale"}}
    )
    await publish_all(crm.nats_url, [changed])

    async def rejected() -> list[Any]:
        found = [d.model for d in await stream_messages(crm.nats_url, "CRM")
                 if d.model.name == "crm.command_rejected"]  # fmt: skip
        assert found
        return found

    (refusal,) = await eventually(rejected, message="the bus command refused")
    assert (refusal.status, refusal.command) == (422, "crm.start_campaign")
    starts = [d.model for d in await _outbound(crm.nats_url) if isinstance(d.model, StartCampaign)]
    assert [(s.campaign_id, s.content.text) for s in starts] == [  # type: ignore[union-attr]
        ("fixed", "Spring sale: 20% off"), ("spring", "Spring sale: 20% off"), ("spring", "x"),
    ]  # fmt: skip
