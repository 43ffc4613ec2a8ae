"""Inbound as the providers mean it, through the CRM on real NATS and Postgres: provider
payloads go through the ingest normalizers and their events through the CRM, and the
contacts and conversations are who and what the providers say they are."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.conv import publish_all
from tests.support.crm import Crm

from switchboard.events import Event
from switchboard.ingest.normalize import viber
from switchboard.ingest.normalize.telegram import normalize_update
from switchboard.ingest.normalize.whatsapp import normalize_payload

pytestmark = pytest.mark.e2e
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DATE = 1763640000
SUPER = {"id": -1002002, "type": "supergroup", "title": "Owners club"}
GROUP = {"id": -3003, "type": "group", "title": "Old group"}
ANON = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
ADA = {"id": 555, "is_bot": False, "first_name": "Ada"}
BOB = {"id": 556, "is_bot": False, "first_name": "Bob"}
BSUID = "US.13491208655302741918"
PRIVATE = {"id": 555, "type": "private", "first_name": "Ada"}
PHONE = "16505551234"


def tg(update_id: int, chat: dict[str, Any], sender: dict[str, Any], **fields: Any) -> list[Event]:
    update = {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": DATE + update_id,
            "chat": chat,
            "from": sender,
            **fields,
        },
    }
    return normalize_update(update, account="shop", raw_id=f"tg:shop:{update_id}", received_at=NOW)


def wa(wamid: str, *, phone: str | None, bsuid: str | None, **fields: Any) -> list[Event]:
    msg: dict[str, Any] = {"id": wamid, "timestamp": str(DATE), **fields}
    contact: dict[str, Any] = {"profile": {"name": "Wanda"}}
    if phone:
        msg["from"] = contact["wa_id"] = phone
    if bsuid:
        msg["from_user_id"] = contact["user_id"] = bsuid
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1022",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "109", "display_phone_number": "1"},
                            "contacts": [contact],
                            "messages": [msg],
                        },
                    }
                ],
            }
        ],
    }
    return normalize_payload(body, account="wa1", raw_id=f"wa:{wamid}", received_at=NOW)


def text(body: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": body}}


async def contacts_of(crm: Crm, count: int) -> list[dict[str, Any]]:
    body = await crm.until("/v1/contacts", lambda b: len(b["items"]) == count)
    return list(body["items"])


async def test_who_sent_it_and_what_it_is(crm: Crm) -> None:
    await publish_all(
        crm.nats_url,
        [
            # two anonymous admins in one group (each signs with their title) and a member
            *tg(1, SUPER, ANON, sender_chat=SUPER, author_signature="Owner", text="welcome"),
            *tg(2, SUPER, ANON, sender_chat=SUPER, author_signature="Support", text="ask us"),
            *tg(3, SUPER, BOB, text="hi all"),
            # service messages: not customer text
            *tg(4, SUPER, ADA, new_chat_members=[ADA]),
            *tg(5, SUPER, BOB, new_chat_title="Owners club 2"),
            # a group that becomes a supergroup: the conversation moves to the new id
            *tg(6, GROUP, ADA, text="before"),
            *tg(7, GROUP, ADA, migrate_to_chat_id=-1004004),
            *tg(8, {"id": -1004004, "type": "supergroup"}, ANON, migrate_from_chat_id=-3003),
            *tg(9, {"id": -1004004, "type": "supergroup"}, ADA, text="after"),
            # WhatsApp: a user with a username writes with their BSUID only
            *wa("wamid.1", phone=None, bsuid=BSUID, type="text", text={"body": "hi"}),
        ],
    )
    # Owner, Support, Bob, Ada and Wanda: two anonymous admins are two people, and no
    # placeholder account (GroupAnonymousBot) is anyone
    contacts = await contacts_of(crm, 5)
    names = sorted(c["display_name"] or "" for c in contacts)
    assert names == ["Ada", "Bob", "Owner", "Support", "Wanda"]
    wanda = next(c for c in contacts if c["display_name"] == "Wanda")["id"]

    inbox = await crm.until("/v1/conversations", lambda b: len(b["items"]) == 3)
    by_chat = {c["chat_id"]: c for c in inbox["items"]}
    assert by_chat[str(SUPER["id"])]["message_count"] == 3  # a join and a title count nothing
    assert "-3003" not in by_chat  # moved to the supergroup's id
    assert (by_chat["-1004004"]["message_count"], by_chat["-1004004"]["chat_type"]) == (
        2,
        "supergroup",
    )

    # later the phone appears beside the BSUID: linked to the same person
    await publish_all(crm.nats_url, wa("wamid.2", phone=PHONE, bsuid=BSUID, **text("again")))

    def identity_phone(body: dict[str, Any]) -> bool:
        return any(i.get("phone") == PHONE for i in body["identities"])

    await crm.until(f"/v1/contacts/{wanda}", identity_phone)
    # an old-style webhook with the phone alone is the same person
    await publish_all(crm.nats_url, wa("wamid.3", phone=PHONE, bsuid=None, **text("old")))

    def has(*external_ids: str) -> Any:
        def check(body: dict[str, Any]) -> bool:
            return set(external_ids) <= {i["external_id"] for i in body["identities"]}

        return check

    await crm.until(f"/v1/contacts/{wanda}", has(BSUID, PHONE))
    # the number change Meta reports links the new phone and BSUID
    change = {
        "type": "user_changed_number",
        "body": "Wanda changed from 16505551234 to 16505559999",
        "wa_id": "16505559999",
        "user_id": "US.777",
    }
    await publish_all(
        crm.nats_url, wa("wamid.4", phone=PHONE, bsuid=BSUID, type="system", system=change)
    )
    await crm.until(f"/v1/contacts/{wanda}", has(BSUID, PHONE, "US.777", "16505559999"))
    await publish_all(
        crm.nats_url, wa("wamid.5", phone="16505559999", bsuid="US.777", **text("new"))
    )
    inbox = await crm.until("/v1/conversations", lambda b: len(b["items"]) == 5)
    whatsapp = [c for c in inbox["items"] if c["channel"] == "whatsapp"]
    assert {c["chat_id"] for c in whatsapp} == {BSUID, PHONE, "US.777"}
    assert {c["contact_id"] for c in whatsapp} == {wanda}
    assert len(await contacts_of(crm, 5)) == 5
    detail = await crm.get(f"/v1/contacts/{wanda}")
    assert len(detail["leads"]) == 1


async def test_a_deep_link_is_where_the_lead_comes_from(crm: Crm) -> None:
    """Viber: a conversation opened from a deep link (``context``) makes the person and
    their lead at once, with the referral; Telegram: ``/start <payload>`` does the same."""
    user = {"id": "01234567890A=", "name": "Vic"}
    opened = {
        "event": "conversation_started",
        "timestamp": DATE * 1000,
        "message_token": 7,
        "type": "open",
        "context": "spring-promo",
        "user": user,
        "subscribed": False,
    }
    message = {
        "event": "message",
        "timestamp": DATE * 1000 + 5,
        "message_token": 8,
        "sender": user,
        "message": {"type": "text", "text": "hello"},
    }
    # the opening first (the resolver works on messages concurrently; in life the user
    # writes seconds after opening the chat)
    await publish_all(
        crm.nats_url,
        [
            *viber.normalize_payload(opened, account="vb1", raw_id="vb:1", received_at=NOW),
            *tg(1, PRIVATE, ADA, text="/start tg-campaign"),
        ],
    )
    await crm.until("/v1/leads", lambda b: len(b["items"]) == 2)
    await publish_all(
        crm.nats_url,
        viber.normalize_payload(message, account="vb1", raw_id="vb:2", received_at=NOW),
    )
    await crm.until("/v1/conversations", lambda b: len(b["items"]) == 2)
    await contacts_of(crm, 2)
    leads = await crm.until("/v1/leads", lambda b: len(b["items"]) == 2)
    sources = {}
    for item in leads["items"]:
        lead = await crm.get(f"/v1/leads/{item['id']}")
        sources[lead["source_channel"]] = (lead["referral_source"], lead["referral_campaign"])
    assert sources == {
        "viber": ("deep_link", "spring-promo"),
        "telegram": ("deep_link", "tg-campaign"),
    }
