"""The CRM over real NATS and Postgres: contacts resolved across channels, edits and
deletions, delivery status in order whatever the arrival order, lead stages with history,
optimistic concurrency, workspace isolation, erasure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise
from typing import Any

import orjson
import pytest
from tests.support.conv import T0, deleted, edited, publish_all, received, sent
from tests.support.crm import AUTH, Crm, running_crm
from tests.support.db import assert_rebuilt_as_live, projected
from tests.support.stack import OTHER_KEY
from tests.support.streams import events_where

from switchboard.crm.queries import encode_cursor
from switchboard.crm.settings import CrmSettings
from switchboard.events import encode
from switchboard.events.catalog.common import Channel, Chat
from switchboard.events.catalog.crm import UpdateContact
from switchboard.events.catalog.delivery import DeliveryReceipt, DeliverySent
from switchboard.events.catalog.mtproto import AccountStatus, AccountStatusChanged
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually

pytestmark = pytest.mark.e2e


async def test_same_phone_on_two_channels_is_one_contact(crm: Crm) -> None:
    await publish_all(
        crm.nats_url,
        [
            received(
                Channel.WHATSAPP,
                "wa1",
                "4917612345678",
                "Hallo",
                1,
                phone="4917612345678",
                name="Max",
            ),
            received(Channel.GENERIC, "shop", "u-77", "order?", 2, phone="+49 176 12345678"),
            received(Channel.TELEGRAM, "demo", "555", "hi from telegram", 3),
        ],
    )
    body = await crm.until("/v1/contacts", lambda b: len(b["items"]) == 2)
    # Max is the contact with the phone. Not found by name: the resolver runs messages
    # concurrently, so either message may found the contact and name it.
    (max_id,) = [c["id"] for c in body["items"] if c["phone"]]
    # The generic message can meet Max's phone claim before Max's contact is created: it is
    # retried (NotCreatedYetError), and the link comes a moment after the two contacts do.
    detail = await crm.until(f"/v1/contacts/{max_id}", lambda b: len(b["identities"]) == 2)
    assert sorted((i["channel"], i["external_id"]) for i in detail["identities"]) == [
        ("generic", "u-77"),
        ("whatsapp", "4917612345678"),
    ]
    assert len(detail["leads"]) == 1  # one lead for the person, not per channel
    inbox = await crm.until("/v1/conversations", lambda b: len(b["items"]) == 3)
    assert {c["contact_id"] for c in inbox["items"] if c["channel"] != "telegram"} == {max_id}
    # redelivery of the same messages changes nothing
    await publish_all(
        crm.nats_url,
        [received(Channel.GENERIC, "shop", "u-77", "order?", 2, phone="+49 176 12345678")],
    )
    assert len((await crm.get("/v1/leads"))["items"]) == 2


async def test_a_generic_chat_named_apart_from_its_sender_is_the_sender_s(crm: Crm) -> None:
    """A generic source names its chat (``data.chat_id``) apart from who writes in it
    (``data.sender.id``), as a website chat does. The inbox found a conversation's contact by
    the chat id only, so such a conversation had none: not in the contact's filter, and
    not in a segment (a campaign to the source's customers was an empty segment)."""
    first = received(Channel.GENERIC, "site", "u-42", "call me back", 1, name="Greta")
    later = received(Channel.GENERIC, "site", "u-42", "today please", 2, name="Greta")
    chat = Chat(id="site-chat-42")
    await publish_all(
        crm.nats_url,
        [first.model_copy(update={"chat": chat}), later.model_copy(update={"chat": chat})],
    )
    (contact,) = (await crm.until("/v1/contacts", lambda b: len(b["items"]) == 1))["items"]
    inbox = await crm.until(
        "/v1/conversations", lambda b: [c["message_count"] for c in b["items"]] == [2]
    )
    (conversation,) = inbox["items"]
    assert (conversation["chat_id"], conversation["contact_id"]) == ("site-chat-42", contact["id"])
    mine = await crm.get("/v1/conversations", contact_id=contact["id"])
    assert [c["id"] for c in mine["items"]] == [conversation["id"]]
    r = await crm.post(
        "/v1/campaigns",
        {"campaign_id": "site-news", "segment": {"channel": "generic"},
         "content": {"kind": "text", "text": "news"}},
    )  # fmt: skip
    assert r.status_code == 202, r.text
    assert (r.json()["recipients"], r.json()["accounts"]) == (1, ["site"])


async def test_a_linked_identity_names_a_contact_that_has_no_name(crm: Crm) -> None:
    """A webhook that knows only the phone founds a nameless contact; the person's WhatsApp
    profile name, linked by that phone later, names it; a third identity's name does not
    rename it."""
    phone = "4917698765432"
    await publish_all(
        crm.nats_url,
        [received(Channel.GENERIC, "shop", "u-1", "order?", 1, phone=phone, name=None)],
    )
    (founded,) = (await crm.until("/v1/contacts", lambda b: len(b["items"]) == 1))["items"]
    assert founded["display_name"] is None
    await publish_all(
        crm.nats_url,
        [received(Channel.WHATSAPP, "wa1", phone, "Hallo", 2, phone=phone, name="Max")],
    )
    path = f"/v1/contacts/{founded['id']}"
    named = await crm.until(path, lambda b: len(b["identities"]) == 2)
    assert named["display_name"] == "Max"
    await publish_all(
        crm.nats_url,
        [received(Channel.GENERIC, "shop", "u-2", "me again", 3, phone=phone, name="M. M.")],
    )
    again = await crm.until(path, lambda b: len(b["identities"]) == 3)
    assert again["display_name"] == "Max"
    assert len((await crm.get("/v1/contacts"))["items"]) == 1


async def test_edits_deletes_search_and_out_of_order_receipts(crm: Crm) -> None:
    first = received(Channel.TELEGRAM, "demo", "555", "I want a blue bike", 1)
    second = received(Channel.TELEGRAM, "demo", "555", "wrong chat, sorry", 2)
    out = sent(Channel.TELEGRAM, "demo", "555", "m-1", "900", "Blue bikes are in stock", 3)
    receipts = [
        DeliveryReceipt(
            channel=Channel.TELEGRAM,
            account="demo",
            recipient="555",
            status=s,
            provider_message_id="900",
            at=T0 + timedelta(seconds=10 + i),
        )
        for i, s in enumerate(["delivered", "read"])
    ]
    early_edit = edited(received(Channel.TELEGRAM, "demo", "555", "x", 4), "edited before", 60)
    await publish_all(
        crm.nats_url,
        [
            receipts[1],
            early_edit,  # read arrives first; the edit overtakes its message
            first,
            second,
            edited(first, "I want a red bike", 30),
            deleted(second),
            out,
            DeliverySent(
                message_id="m-1",
                channel=Channel.TELEGRAM,
                account="demo",
                recipient="555",
                at=T0,
                provider_message_id="900",
            ),
            receipts[0],
            received(Channel.TELEGRAM, "demo", "555", "original", 4),
        ],
    )
    conv = (
        await crm.until(
            "/v1/conversations", lambda b: b["items"] and b["items"][0]["message_count"] == 4
        )
    )["items"][0]

    def ready(b: Any) -> bool:
        return len(b["items"]) == 4 and b["items"][2].get("status") == "read"

    msgs = (await crm.until(f"/v1/conversations/{conv['id']}/messages", ready))["items"]
    assert [(m["direction"], m["text"]) for m in msgs] == [
        ("in", "I want a red bike"),
        ("in", None),
        ("out", "Blue bikes are in stock"),
        ("in", "edited before"),
    ]
    assert msgs[0]["edited_at"] is not None
    assert msgs[1]["deleted_at"] is not None
    assert msgs[1]["content"] == {"kind": "deleted"}
    assert msgs[2]["status"] == "read"  # not "delivered", although that came last
    found = await crm.get("/v1/messages/search", text="red bike")
    assert [m["text"] for m in found["items"]] == ["I want a red bike"]
    assert (await crm.get("/v1/messages/search", text="blue"))["items"][0]["direction"] == "out"


async def test_lead_moves_through_stages_with_history_and_concurrency(crm: Crm) -> None:
    await publish_all(crm.nats_url, [received(Channel.TELEGRAM, "demo", "555", "quote?", 1)])
    lead = (await crm.until("/v1/leads", lambda b: len(b["items"]) == 1))["items"][0]
    assert lead["stage"] == "new"
    url = f"{crm.url}/v1/leads/{lead['id']}"
    r = await crm.http.post(
        f"{url}/stage",
        headers=AUTH,
        json={"to_stage": "qualified", "expected_version": lead["version"], "by": "alice"},
    )
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["stage"], moved["version"] > lead["version"]) == ("qualified", True)
    stale = await crm.http.post(
        f"{url}/stage", headers=AUTH, json={"to_stage": "won", "expected_version": lead["version"]}
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "conflict"
    bad = await crm.http.post(f"{url}/stage", headers=AUTH, json={"to_stage": "maybe"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_stage")
    won = await crm.http.post(
        f"{url}/stage", headers=AUTH, json={"to_stage": "won", "value": "1500.00"}
    )
    assert won.json()["stage"] == "won"
    assert won.json()["value"] == "1500.00"
    assert [(h["from_stage"], h["to_stage"]) for h in won.json()["history"]] == [
        (None, "new"),
        ("new", "qualified"),
        ("qualified", "won"),
    ]
    assert won.json()["history"][1]["by"] == "alice"
    missing = await crm.http.post(
        f"{crm.url}/v1/leads/ld_nope/stage", headers=AUTH, json={"to_stage": "won"}
    )
    assert missing.status_code == 404
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    assert (await crm.http.get(url, headers=other)).status_code == 404
    assert (
        await crm.http.post(f"{url}/stage", headers=other, json={"to_stage": "lost"})
    ).status_code == 404
    assert (await crm.http.get(f"{crm.url}/v1/leads", headers=other)).json()["items"] == []
    assert (await crm.get("/v1/leads", stage="won"))["items"][0]["id"] == lead["id"]
    assert (await crm.get("/v1/leads", stage="new"))["items"] == []


async def test_merge_split_and_erasure(crm: Crm) -> None:
    await publish_all(
        crm.nats_url,
        [
            received(
                Channel.TELEGRAM,
                "demo",
                "555",
                "hello, call me at +49 170 1234567",
                1,
                name="Ada Lovelace",
            ),
            received(Channel.VIBER, "vb", "viber-ada", "me again", 2, name="Ada L"),
        ],
    )
    people = (await crm.until("/v1/contacts", lambda b: len(b["items"]) == 2))["items"]
    tg = next(p for p in people if p["source_channel"] == "telegram")
    vb = next(p for p in people if p["source_channel"] == "viber")
    r = await crm.http.post(
        f"{crm.url}/v1/contacts/{tg['id']}/merge",
        headers=AUTH,
        json={"merged_contact_id": vb["id"]},
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["identities"]) == 2
    assert [c["id"] for c in (await crm.get("/v1/contacts"))["items"]] == [tg["id"]]
    # Merging back (or the merged one again) is refused: the projection folded the
    # survivor into itself and both contacts vanished from the lists.
    for survivor, merged in ((vb["id"], tg["id"]), (tg["id"], vb["id"])):
        r = await crm.http.post(f"{crm.url}/v1/contacts/{survivor}/merge", headers=AUTH,
                                json={"merged_contact_id": merged})  # fmt: skip
        assert r.status_code == (409 if survivor == vb["id"] else 200), r.text
    assert r.json()["id"] == tg["id"]  # the repeat is the merge already made
    assert [c["id"] for c in (await crm.get("/v1/contacts"))["items"]] == [tg["id"]]
    r = await crm.http.post(
        f"{crm.url}/v1/contacts/{tg['id']}",
        headers=AUTH,
        json={"tags_added": ["vip"], "note": "prefers calls"},
    )
    assert (r.json()["tags"], [n["note"] for n in r.json()["notes"]]) == (
        ["vip"],
        ["prefers calls"],
    )

    r = await crm.http.post(f"{crm.url}/v1/contacts/{tg['id']}/erase", headers=AUTH)
    assert r.status_code == 200, r.text
    erased = r.json()
    assert (erased["display_name"], erased["identities"], erased["notes"], erased["tags"]) == (
        None,
        [],
        [],
        [],
    )
    inbox = (await crm.get("/v1/conversations"))["items"]
    for conv in inbox:
        assert conv["title"] is None
        assert conv["last_preview"] is None
        msgs = (await crm.get(f"/v1/conversations/{conv['id']}/messages"))["items"]
        assert all(m["text"] is None and m["sender_name"] is None for m in msgs)
    assert (await crm.get("/v1/messages/search", text="call"))["items"] == []
    # a message that arrives (or replays) after the erasure is blanked on sight
    await publish_all(crm.nats_url, [received(Channel.TELEGRAM, "demo", "555", "still me", 3)])
    conv = next(c for c in inbox if c["channel"] == "telegram")
    msgs = (
        await crm.until(f"/v1/conversations/{conv['id']}/messages", lambda b: len(b["items"]) == 2)
    )["items"]
    assert [m["text"] for m in msgs] == [None, None]
    again = await crm.http.post(
        f"{crm.url}/v1/contacts/{tg['id']}", headers=AUTH, json={"note": "x"}
    )
    assert again.status_code == 410


CHECKPOINTS = (
    ("crm", "conversations", "CONV"),
    ("crm", "crm", "CRM"),
    ("crm", "deliveries", "DELIVERY"),
    ("crm", "user_accounts", "MTPROTO"),
)


async def test_rebuild_is_byte_identical_keeps_erasure_and_live_service_carries_on(
    crm: Crm, nats_url: str, postgres_url: str
) -> None:
    from switchboard.crm.rebuild import rebuild

    first = received(Channel.TELEGRAM, "demo", "555", "blue bike?", 1)
    await publish_all(
        crm.nats_url,
        [
            first,
            edited(first, "red bike?", 20),
            received(Channel.WHATSAPP, "wa1", "4917600000001", "Hallo", 2, phone="4917600000001"),
            received(Channel.VIBER, "vb", "viber-9", "privet", 3, name="Olga"),
            sent(Channel.TELEGRAM, "demo", "555", "m-1", "77", "yes, in red", 4),
            DeliveryReceipt(
                channel=Channel.TELEGRAM,
                account="demo",
                recipient="555",
                status="read",
                provider_message_id="77",
                at=T0,
            ),
            AccountStatusChanged(session_id="seller", status=AccountStatus.ACTIVE, at=T0),
            AccountStatusChanged(
                session_id="seller",
                status=AccountStatus.FLOOD_LIMITED,
                reason="flood wait",
                error_code="FLOOD_WAIT_X",
                until=T0 + timedelta(seconds=30),
                at=T0 + timedelta(seconds=1),
            ),
        ],
    )
    await crm.until(
        "/v1/user-accounts", lambda b: b["items"][:1] and b["items"][0]["status"] == "flood_limited"
    )
    leads = (await crm.until("/v1/leads", lambda b: len(b["items"]) == 3))["items"]
    r = await crm.http.post(
        f"{crm.url}/v1/leads/{leads[0]['id']}/stage", headers=AUTH, json={"to_stage": "contacted"}
    )
    assert r.status_code == 200
    olga = next(c for c in (await crm.get("/v1/contacts"))["items"] if c["display_name"] == "Olga")
    assert (
        await crm.http.post(f"{crm.url}/v1/contacts/{olga['id']}/erase", headers=AUTH)
    ).status_code == 200
    await eventually(
        lambda: projected(nats_url, postgres_url, CHECKPOINTS), message="live caught up"
    )
    before = await crm.get("/v1/conversations")

    report = await rebuild(load_settings(CrmSettings), keep_old=True, log=lambda _: None)
    assert report.schema_old
    _, compared = await assert_rebuilt_as_live(postgres_url, "crm", report.schema_old)
    assert compared > 15
    assert await crm.get("/v1/conversations") == before
    assert not any(c["display_name"] == "Olga" for c in (await crm.get("/v1/contacts"))["items"])
    # the live projectors notice the swap and continue on the new tables
    await publish_all(crm.nats_url, [received(Channel.TELEGRAM, "demo", "556", "after swap", 9)])
    await crm.until("/v1/conversations", lambda b: len(b["items"]) == len(before["items"]) + 1)


async def test_commands_over_the_bus_apply_or_are_rejected_with_a_reason(crm: Crm) -> None:
    from tests.support.streams import stream_messages

    from switchboard.events.catalog.crm import ChangeLeadStage

    await publish_all(crm.nats_url, [received(Channel.TELEGRAM, "demo", "555", "hi", 1)])
    lead = (await crm.until("/v1/leads", lambda b: len(b["items"]) == 1))["items"][0]
    await publish_all(
        crm.nats_url,
        [
            ChangeLeadStage(lead_id=lead["id"], to_stage="contacted", by="bot"),
            ChangeLeadStage(lead_id=lead["id"], to_stage="nonsense"),
            ChangeLeadStage(lead_id="ld_missing", to_stage="won"),
            ChangeLeadStage(lead_id=lead["id"], to_stage="won", expected_version=1),
        ],
    )
    await crm.until(f"/v1/leads/{lead['id']}", lambda b: b["stage"] == "contacted")

    async def rejections() -> list[Any] | None:
        found = [
            d.model
            for d in await stream_messages(crm.nats_url, "CRM")
            if d.model.name == "crm.command_rejected"
        ]
        return found if len(found) == 3 else None

    rejected = await eventually(rejections, message="three rejections")
    assert sorted((r.status, r.command) for r in rejected) == [
        (404, "crm.change_lead_stage"),
        (409, "crm.change_lead_stage"),
        (422, "crm.change_lead_stage"),
    ]
    assert any("nonsense" in r.reason for r in rejected)


async def test_callbacks_show_in_the_conversation_and_split_detaches_an_identity(
    crm: Crm,
) -> None:
    from switchboard.events.catalog.common import Chat, Sender
    from switchboard.events.catalog.conv import CallbackReceived, ProviderIds

    ada = received(Channel.WHATSAPP, "wa1", "4917611111111", "hi", 1, phone="4917611111111")
    other = received(Channel.GENERIC, "shop", "g-1", "hello", 2, phone="+49 176 11111111")
    click = CallbackReceived(
        channel=Channel.WHATSAPP,
        account="wa1",
        chat=Chat(id="4917611111111"),
        provider=ProviderIds(message_id="cb-1"),
        received_at=T0 + timedelta(seconds=5),
        sender=Sender(id="4917611111111"),
        callback_id="cb-1",
        data="buy:42",
        message_id="m-9",
    )
    await publish_all(crm.nats_url, [ada, other, click])
    wa = (
        await crm.until(
            "/v1/conversations",
            lambda b: len(b["items"]) == 2 and any(c["message_count"] == 2 for c in b["items"]),
        )
    )["items"]
    conv = next(c for c in wa if c["channel"] == "whatsapp")
    msgs = (await crm.get(f"/v1/conversations/{conv['id']}/messages"))["items"]
    assert [(m["kind"], m["text"]) for m in msgs] == [("text", "hi"), ("callback", "buy:42")]
    assert msgs[1]["content"] == {"kind": "callback", "data": "buy:42", "message_id": "m-9"}

    person = (await crm.until("/v1/contacts", lambda b: len(b["items"]) == 1))["items"][0]
    await crm.until(f"/v1/contacts/{person['id']}", lambda b: len(b["identities"]) == 2)
    r = await crm.http.post(
        f"{crm.url}/v1/contacts/{person['id']}/split",
        headers=AUTH,
        json={"channel": "generic", "external_id": "g-1"},
    )
    assert r.status_code == 200, r.text
    assert [i["channel"] for i in r.json()["identities"]] == ["whatsapp"]
    contacts = (await crm.until("/v1/contacts", lambda b: len(b["items"]) == 2))["items"]
    split_off = next(c for c in contacts if c["id"] != person["id"])
    detail = await crm.get(f"/v1/contacts/{split_off['id']}")
    assert [(i["channel"], i["external_id"]) for i in detail["identities"]] == [("generic", "g-1")]
    again = await crm.http.post(
        f"{crm.url}/v1/contacts/{person['id']}/split",
        headers=AUTH,
        json={"channel": "whatsapp", "external_id": "4917611111111"},
    )
    assert (again.status_code, again.json()["code"]) == (422, "last_identity")


async def test_user_accounts_show_the_latest_status_of_each_session_per_workspace(
    crm: Crm,
) -> None:
    """``mtproto.account_status_changed`` becomes the session's row in ``/v1/user-accounts``:
    the later announcement wins, another workspace's sessions are not listed, and a status
    filter that names no status is a 422 naming the field."""
    await publish_all(
        crm.nats_url,
        [
            AccountStatusChanged(session_id="seller", status=AccountStatus.ACTIVE, at=T0),
            AccountStatusChanged(session_id="buyer", status=AccountStatus.ACTIVE, at=T0),
            AccountStatusChanged(
                session_id="seller",
                status=AccountStatus.BANNED,
                reason="the account is banned",
                error_code="USER_DEACTIVATED_BAN",
                at=T0 + timedelta(seconds=5),
            ),
        ],
    )
    await publish_all(
        crm.nats_url,
        [AccountStatusChanged(session_id="theirs", status=AccountStatus.RESTRICTED, at=T0)],
        workspace="other",
    )
    body = await crm.until(
        "/v1/user-accounts",
        lambda b: (
            [(a["session_id"], a["status"]) for a in b["items"]]
            == [("buyer", "active"), ("seller", "banned")]
        ),
    )
    seller = body["items"][1]
    assert seller["reason"] == "the account is banned"
    assert seller["error_code"] == "USER_DEACTIVATED_BAN"
    assert seller["since"] == (T0 + timedelta(seconds=5)).isoformat()
    banned = await crm.get("/v1/user-accounts", status="banned")
    assert [a["session_id"] for a in banned["items"]] == ["seller"]
    theirs = await crm.http.get(
        f"{crm.url}/v1/user-accounts", headers={"Authorization": f"Bearer {OTHER_KEY}"}
    )
    assert theirs.status_code == 200
    assert [a["session_id"] for a in theirs.json()["items"]] == ["theirs"]
    bad = await crm.http.get(f"{crm.url}/v1/user-accounts", headers=AUTH, params={"status": "x"})
    assert bad.status_code == 422
    assert "status" in bad.text


async def test_lists_page_by_cursor_and_a_forged_cursor_is_a_400(crm: Crm) -> None:
    await publish_all(
        crm.nats_url,
        [received(Channel.TELEGRAM, "demo", f"chat-{n}", f"hi {n}", n) for n in (1, 2, 3)],
    )
    whole = await crm.until("/v1/conversations", lambda b: len(b["items"]) == 3)
    first = await crm.get("/v1/conversations", limit=2)
    rest = await crm.get("/v1/conversations", limit=2, cursor=first["next_cursor"])
    assert [c["id"] for c in first["items"] + rest["items"]] == [c["id"] for c in whole["items"]]
    assert rest["next_cursor"] is None
    forged = encode_cursor("not a time", "cv_1")
    r = await crm.http.get(f"{crm.url}/v1/conversations", headers=AUTH, params={"cursor": forged})
    assert r.status_code == 400
    assert r.json()["code"] == "bad_cursor"


async def test_a_contact_change_too_large_for_the_bus_is_422_naming_the_field(
    nats_default_server: EmbeddedNats, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a server with NATS's default 1 MB ``max_payload`` (what a deployment has), a note
    or attributes that fit the API's 1 MiB body limit but not the bus once sealed (base64:
    a third more) were a 500 ``internal_error``, and the same over the bus a command
    retried for ever. Now every field of a contact change has a documented limit: 422 over
    HTTP naming the field, ``crm.command_rejected`` 422 naming it over the bus; the contact
    is as it was, and a change within the limits still goes through."""
    async with running_crm(nats_default_server.url, postgres_url, monkeypatch) as crm:
        await publish_all(crm.nats_url, [received(Channel.TELEGRAM, "demo", "555", "hi", 1)])
        contact = (await crm.until("/v1/contacts", lambda b: len(b["items"]) == 1))["items"][0]
        url = f"/v1/contacts/{contact['id']}"
        for body, field in (
            ({"note": "x" * 900_000}, "note"),
            ({"attributes": {"a": "x" * 900_000}}, "attributes"),
            ({"display_name": "x" * 5000}, "display_name"),
            ({"tags_added": ["t" * 300]}, "tags_added"),
        ):
            r = await crm.post(url, body)
            assert r.status_code == 422, r.text
            assert [e["path"].split(".")[1] for e in r.json()["errors"]] == [field], r.text
        assert (await crm.get(url))["version"] == contact["version"]
        ok = await crm.post(url, {"note": "n" * 60_000, "attributes": {"plan": "gold"}})
        assert ok.status_code == 200, ok.text
        assert ok.json()["attributes"] == {"plan": "gold"}
        bus = await Bus.connect(crm.nats_url, name="test-big-command")
        try:
            big = UpdateContact(contact_id=contact["id"], note="x" * 100)
            data = orjson.loads(big.model_dump_json())
            data["note"] = "x" * 900_000  # a producer that skipped the model's checks
            enc = encode(big, source="test", workspace_id="demo")
            await bus.publish_raw(enc.subject, orjson.dumps(data), dict(enc.headers))

            async def refused() -> list[Any]:
                found = await events_where(crm.nats_url, "CRM", command="crm.update_contact")
                assert found
                return found

            (refusal,) = await eventually(refused, timeout=30)
            assert refusal.model.status == 422
            assert refusal.model.reason.startswith("note:")
        finally:
            await bus.close()
        assert (await crm.get(url))["version"] == ok.json()["version"]


async def test_a_contact_search_takes_percent_and_underscore_as_themselves(crm: Crm) -> None:
    """``GET /v1/contacts?text=`` finds the words as typed: ``_`` and ``%`` are characters,
    not LIKE's wildcards. Before, ``100%`` found every name starting with 100, and ``a_b``
    found ``axb``."""
    names = ["Deal 100% off", "Deal 1000 off", "ann_b", "annxb"]
    people = [
        received(Channel.TELEGRAM, "demo", f"c{n}", "hi", n, name=name)
        for n, name in enumerate(names, 1)
    ]
    await publish_all(crm.nats_url, people)
    await crm.until("/v1/contacts", lambda b: len(b["items"]) == len(names))
    for text, names in (
        ("100%", ["Deal 100% off"]),
        ("ann_b", ["ann_b"]),
        ("ANN", ["ann_b", "annxb"]),
    ):
        found = await crm.get("/v1/contacts", text=text)
        assert sorted(c["display_name"] for c in found["items"]) == names, text


async def _moved_while_stopped(
    nats_url: str,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    lead_id: str,
    stages: list[str],
    before_start: Callable[[], None] = lambda: None,
) -> None:
    """A lead's creation and its moves to ``stages``, published while the CRM is stopped
    (its next start fetches them as one batch): every move applied, in order, none
    rejected."""
    from tests.support.streams import stream_messages

    from switchboard.events.catalog.crm import ChangeLeadStage, CreateLead

    async with running_crm(nats_url, postgres_url, monkeypatch) as crm:
        await publish_all(nats_url, [received(Channel.TELEGRAM, "demo", lead_id, "hello", 1)])
        contact = (await crm.until("/v1/contacts", lambda b: len(b["items"]) == 1))["items"][0]
    await publish_all(
        nats_url,
        [CreateLead(lead_id=lead_id, contact_id=contact["id"], stage="new")]
        + [ChangeLeadStage(lead_id=lead_id, to_stage=s) for s in stages],
    )
    before_start()
    async with running_crm(nats_url, postgres_url, monkeypatch) as crm:

        def moved(body: dict[str, Any]) -> bool:
            return [x["stage"] for x in body["items"] if x["id"] == lead_id] == stages[-1:]

        await crm.until("/v1/leads", moved)
        lead = await crm.get(f"/v1/leads/{lead_id}")
    path = ["new", *stages]
    assert [(h["from_stage"], h["to_stage"]) for h in lead["history"]] == [
        (None, "new"),
        *pairwise(path),
    ]
    rejected = [
        d.model for d in await stream_messages(nats_url, "CRM")
        if d.model.name == "crm.command_rejected"
    ]  # fmt: skip
    assert rejected == []


async def test_commands_on_one_lead_apply_in_the_order_they_were_published(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CRM's commands durable hands out a fetched batch to concurrent handlers, so a
    lead's creation and its moves published together ran at once: a move found no lead (a
    404 rejection) or a later move landed before an earlier one."""
    stages = ["contacted", "qualified", "won"]
    await _moved_while_stopped(nats_url, postgres_url, monkeypatch, "ld_order", stages)


async def test_a_lead_s_moves_wait_for_its_creation_retried_after_an_outage(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ordered is not enough when the first command of a lead meets an outage: its creation
    went back to the stream for a retry while its moves, next in the batch, were applied to
    no lead and rejected for good (404), an infrastructure failure turned into a permanent
    one. The moves now go back behind it and apply after it."""
    from nats.errors import TimeoutError as NatsTimeoutError

    from switchboard.crm.store import EventStore
    from switchboard.events.catalog.crm import LeadCreated

    append, failed = EventStore.append, []

    async def append_after_an_outage(self: EventStore, event: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(event, LeadCreated) and event.lead_id == "ld_outage" and not failed:
            failed.append(event)
            raise NatsTimeoutError  # the bus did not answer: ours, retried
        return await append(self, event, *args, **kw)

    def an_outage_first() -> None:
        monkeypatch.setattr(EventStore, "append", append_after_an_outage)

    stages = ["contacted", "won"]
    await _moved_while_stopped(
        nats_url, postgres_url, monkeypatch, "ld_outage", stages, an_outage_first
    )
    assert failed
