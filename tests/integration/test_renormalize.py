"""``switchboard ingest renormalize``: streams filled the old way (with the events the
normalizers as they were before issue 19 wrote, recorded from them) are repaired from
``RAW``, and a CRM rebuild over them then equals a fresh run of today's normalizers over
the same recorded traffic of every provider. Real NATS (two servers: the repaired one and
the fresh one) and real Postgres."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tests.support.db import create_database
from tests.support.stack import service_env
from tests.support.streams import stream_messages

from switchboard.crm.rebuild import rebuild
from switchboard.crm.settings import CrmSettings
from switchboard.events import Envelope, Event, model_for
from switchboard.events.codec import parse_type
from switchboard.ingest import cli
from switchboard.ingest import renormalize as renormalizer
from switchboard.ingest.normalize.base import NormalizeError
from switchboard.ingest.normalizer import SPEC, normalize_raw
from switchboard.ingest.raw import raw_envelope
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError
from switchboard.runtime.embedded import EmbeddedNats
from switchboard.runtime.settings import load_settings

# Fixed: the recorded old events (tests/data/renormalize) carry these times.
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
DATE = int((NOW - timedelta(hours=1)).timestamp())
SUPER = {"id": -1002002, "type": "supergroup", "title": "Club"}
CHANNEL = {"id": -1009, "type": "channel", "title": "News"}
ANON = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
SERVICE = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
ADA = {"id": 555, "is_bot": False, "first_name": "Ada"}
PRIVATE = {"id": 555, "type": "private", "first_name": "Ada"}
BSUID = "US.13491208655302741918"


def tg(update_id: int, chat: dict[str, Any], sender: dict[str, Any], **fields: Any) -> Any:
    message = {"message_id": update_id, "date": DATE + update_id, "chat": chat, **fields}
    return (
        "telegram",
        "shop",
        f"tg:shop:{update_id}",
        {"update_id": update_id, "message": {"from": sender, **message}},
    )


def wa(wamid: str, msg: dict[str, Any], contact: dict[str, Any]) -> Any:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": "109", "display_phone_number": "1"},
        "contacts": [contact],
        "messages": [{"id": wamid, "timestamp": str(DATE), **msg}],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    return ("whatsapp", "wa1", f"wa:{wamid}", body)


PHONE_CONTACT = {"profile": {"name": "Wanda"}, "wa_id": "16505551234"}
BSUID_CONTACT = {"profile": {"name": "Uma"}, "user_id": BSUID}
REFERRAL = {
    "source_url": "https://fb.me/x",
    "source_id": "120",
    "source_type": "ad",
    "ctwa_clid": "CLID",
}
MIX = [
    # Telegram: anonymous admins, a service message, an automatic forward, a deep link, a
    # normal message, the bot added to a group, a poll in a forum topic
    tg(1, SUPER, ANON, sender_chat=SUPER, author_signature="Owner", text="welcome"),
    tg(2, SUPER, ANON, sender_chat=SUPER, author_signature="Support", text="ask us"),
    tg(3, SUPER, ADA, new_chat_members=[ADA]),
    tg(4, SUPER, SERVICE, sender_chat=CHANNEL, is_automatic_forward=True, text="post"),
    tg(5, PRIVATE, ADA, text="/start spring"),
    tg(6, PRIVATE, ADA, text="hello"),
    tg(7, SUPER, ADA, message_thread_id=3, is_topic_message=True, dice={"emoji": "x", "value": 2}),
    (
        "telegram",
        "shop",
        "tg:shop:8",
        {
            "update_id": 8,
            "my_chat_member": {
                "chat": SUPER,
                "from": ADA,
                "date": DATE,
                "old_chat_member": {"status": "member", "user": ADA},
                "new_chat_member": {"status": "administrator", "user": ADA},
            },
        },
    ),
    # WhatsApp: a phone user, a BSUID-only user (the old normalizer dead-lettered it), an
    # edit and a revoke, a click-to-WhatsApp referral
    wa("wamid.1", {"from": "16505551234", "type": "text", "text": {"body": "hi"}}, PHONE_CONTACT),
    wa("wamid.2", {"from_user_id": BSUID, "type": "text", "text": {"body": "me"}}, BSUID_CONTACT),
    wa(
        "wamid.3",
        {
            "from": "16505551234",
            "type": "edit",
            "edit": {
                "original_message_id": "wamid.1",
                "message": {"type": "text", "text": {"body": "hi!"}},
            },
        },
        PHONE_CONTACT,
    ),
    wa(
        "wamid.4",
        {"from": "16505551234", "type": "text", "text": {"body": "ad"}, "referral": REFERRAL},
        PHONE_CONTACT,
    ),
    wa(
        "wamid.5",
        {"from": "16505551234", "type": "revoke", "revoke": {"original_message_id": "wamid.4"}},
        PHONE_CONTACT,
    ),
    # Viber: a message and a conversation opened from a deep link
    (
        "viber",
        "vb1",
        "vb:vb1:message:1",
        {
            "event": "message",
            "timestamp": DATE * 1000,
            "message_token": 1,
            "sender": {"id": "v1=", "name": "Vic"},
            "message": {"type": "text", "text": "privet"},
        },
    ),
    (
        "viber",
        "vb1",
        "vb:vb1:conversation_started:2",
        {
            "event": "conversation_started",
            "timestamp": DATE * 1000,
            "message_token": 2,
            "type": "open",
            "context": "promo-7",
            "user": {"id": "v2=", "name": "Val"},
        },
    ),
    # a generic Standard Webhooks source
    (
        "generic",
        "erp",
        "wh:erp:1",
        {
            "type": "message.received",
            "data": {
                "chat_id": "c1",
                "message_id": "m1",
                "text": "order?",
                "sent_at": NOW.isoformat(),
                "sender": {"id": "u1", "name": "Bo"},
            },
        },
    ),
]
# What the normalizers as they were before issue 19 wrote for each payload of MIX, recorded
# once from their code (tests/data/renormalize/README.md says how).
RECORDED = Path(__file__).parents[1] / "data" / "renormalize" / "pre_issue_19_events.json"


@cache
def _recorded() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(RECORDED.read_text())["recorded"]
    return data


def old_events(raw_id: str, payload: Any) -> list[Event]:
    """The events the old normalizers wrote for ``payload`` (RAW id ``raw_id``); raises
    NormalizeError for a payload they could not read (it went to the DLQ)."""
    recorded = _recorded()[raw_id]
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    assert digest == recorded["payload_sha256"], f"{raw_id}: MIX differs from the recording"
    if "unreadable" in recorded:
        raise NormalizeError(recorded["unreadable"])
    events: list[Event] = []
    for item in recorded["events"]:
        model = model_for(*parse_type(item["type"])).model_validate(item["data"])
        assert isinstance(model, Event)
        events.append(model)
    return events


# What a rebuild writes, less the stream positions (the repaired stream's differ).
COMPARED = {
    "conversations": """SELECT id, channel, account, chat_id, chat_type, title,
        first_message_at, last_message_at, message_count, last_preview
        FROM {}.conversations ORDER BY id""",
    "messages": """SELECT event_id, conversation_id, direction, provider_message_id, sender_id,
        sender_name, kind, text, content, reply_to, sent_at, edited_at, deleted_at
        FROM {}.messages ORDER BY event_id""",
    "pending_edits": """SELECT conversation_id, provider_message_id, edited_at, kind, text
        FROM {}.pending_edits ORDER BY 1, 2, 3""",
}


async def publish_raw(bus: Bus) -> None:
    await bus.provision()
    for provider, account, raw_id, payload in MIX:
        subject, headers = raw_envelope(
            provider=provider,
            account=account,
            raw_id=raw_id,
            source="test",
            workspace_id="demo",
            received_at=NOW,
        )
        await bus.publish_raw(subject, json.dumps(payload).encode(), headers)


async def normalize_all(bus: Bus, old: bool) -> int:
    """What the normalizer consumer does (sealed, ``pii.publish_sealed``), with today's
    normalizers or with what the old ones wrote; returns how many payloads could not be
    read (they would be in the DLQ)."""
    unreadable = 0
    keys = pii.PiiKeys(await bus.kv(pii.BUCKET))
    for raw in await stream_messages_raw(bus):
        subject, headers, body = raw
        try:
            if old:
                envelope = Envelope.from_headers(headers)
                events = old_events(envelope.id, json.loads(body))
            else:
                envelope, events = normalize_raw(subject, headers, body)
        except (NormalizeError, PermanentError):
            unreadable += 1
            continue
        for event in events:
            await pii.publish_sealed(bus, event, cause=envelope, keys=keys)
    return unreadable


async def stream_messages_raw(bus: Bus) -> list[tuple[str, dict[str, str], bytes]]:
    sub = await bus.js.pull_subscribe("raw.>", durable=None, stream="RAW")
    msgs = await sub.fetch(len(MIX), timeout=5)
    await sub.unsubscribe()
    return [(m.subject, dict(m.headers or {}), m.data) for m in msgs]


@pytest.fixture
async def second_nats(tmp_path: Path) -> AsyncIterator[str]:
    server = EmbeddedNats(tmp_path / "nats-fresh").start()
    yield server.url
    server.stop()


async def rebuilt(
    nats_url: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, list[tuple[Any, ...]]]:
    for key, value in service_env(nats_url, database).items():
        monkeypatch.setenv(key, value)
    await rebuild(load_settings(CrmSettings), log=lambda _: None)
    conn = await asyncpg.connect(database)
    try:
        return {
            t: [tuple(r) for r in await conn.fetch(q.format("crm"))] for t, q in COMPARED.items()
        }
    finally:
        await conn.close()


async def test_renormalize_then_rebuild_equals_a_fresh_run(
    nats_url: str, second_nats: str, postgres_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_bus = await Bus.connect(nats_url, name="old")
    fresh_bus = await Bus.connect(second_nats, name="fresh")
    try:
        await publish_raw(old_bus)
        assert await normalize_all(old_bus, old=True) == 1  # the BSUID-only message
        await publish_raw(fresh_bus)
        assert await normalize_all(fresh_bus, old=False) == 0
    finally:
        await old_bus.close()
        await fresh_bus.close()
    old_events = await stream_messages(nats_url, "CONV")
    assert any(d.model.sender.id == "1087968824" for d in old_events if hasattr(d.model, "sender"))  # type: ignore[union-attr]

    for key, value in service_env(nats_url).items():
        monkeypatch.setenv(key, value)
    since = (NOW - timedelta(minutes=5)).isoformat()
    assert await asyncio.to_thread(cli.main, ["renormalize", "--since", since]) == 0

    repaired = await rebuilt(nats_url, await create_database(postgres_server), monkeypatch)
    fresh = await rebuilt(second_nats, await create_database(postgres_server), monkeypatch)
    assert repaired["messages"]  # something was compared
    assert repaired == fresh
    senders = {row[4] for row in repaired["messages"]}
    assert "1087968824" not in senders
    assert {"-1002002/Owner", "-1002002/Support", BSUID} <= senders

    # a second run finds nothing to change
    for key, value in service_env(nats_url).items():
        monkeypatch.setenv(key, value)
    before = len(await stream_messages(nats_url, "CONV"))
    assert await asyncio.to_thread(cli.main, ["renormalize", "--since", since]) == 0
    assert len(await stream_messages(nats_url, "CONV")) == before


async def test_renormalize_waits_for_the_live_normalizer(nats_url: str) -> None:
    """Payloads the live normalizer has not handled yet have no events in CONV yet: the run
    must not take them for new ones. It goes ahead once the consumer has acked them."""
    bus = await Bus.connect(nats_url, name="waits")
    try:
        await publish_raw(bus)
        last = (await bus.js.stream_info("RAW")).state.last_seq
        await renormalizer.normalizer_caught_up(bus, last, timeout=5)  # no consumer: go
        sub = await bus.js.pull_subscribe("raw.>", durable=SPEC.durable, stream="RAW")
        with pytest.raises(RuntimeError, match="has not reached RAW"):
            await renormalizer.normalizer_caught_up(bus, last, timeout=0.5)  # never will
        for msg in await sub.fetch(len(MIX), timeout=5):
            await msg.ack_sync()
        await renormalizer.normalizer_caught_up(bus, last, timeout=30)
    finally:
        await bus.close()


async def test_a_second_renormalize_with_another_change_inside_the_duplicate_window_keeps_it(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run deletes the events it replaces, then publishes the new ones under
    ``<event id>#renormalized``. A second run inside the stream's duplicate window (a fix
    of the fix, minutes later) had its new events dropped as duplicates of the first
    run's, which it had just deleted: the messages were gone from CONV."""
    bus = await Bus.connect(nats_url, name="renormalize-twice")
    try:
        await publish_raw(bus)
        await normalize_all(bus, old=True)
    finally:
        await bus.close()
    for key, value in service_env(nats_url).items():
        monkeypatch.setenv(key, value)
    since = (NOW - timedelta(minutes=5)).isoformat()
    assert await asyncio.to_thread(cli.main, ["renormalize", "--since", since]) == 0
    before = await stream_messages(nats_url, "CONV")

    def shouting(*args: Any) -> Any:
        envelope, events = normalize_raw(*args)
        return envelope, [_shouted(e) for e in events]

    monkeypatch.setattr(renormalizer, "normalize_raw", shouting)
    assert await asyncio.to_thread(cli.main, ["renormalize", "--since", since]) == 0
    after = await stream_messages(nats_url, "CONV")
    assert len(after) == len(before)
    texts = [text for d in after if (text := _text(d.model))]
    assert texts
    assert all(t == t.upper() for t in texts)


def _text(event: Any) -> str | None:
    return getattr(getattr(event, "content", None), "text", None)


def _shouted(event: Any) -> Any:
    """``event`` with its text in capitals (a normalizer changed once more)."""
    text = _text(event)
    if not text:
        return event
    return event.model_copy(
        update={"content": event.content.model_copy(update={"text": text.upper()})}
    )
