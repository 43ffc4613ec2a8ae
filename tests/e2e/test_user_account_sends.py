"""One send API for bots and user accounts: ``POST /v1/messages`` with channel ``mtproto``
goes outbound -> bus (``mtproto.deliver``) -> the gateway holding the session -> the real
Telethon adapter -> the sandbox's wire-level MTProto fake, and comes back as ``delivery.*``
and ``conv.message_sent`` like any other channel; a read in the recipient's app becomes a
read receipt the CRM shows. A FLOOD_WAIT pauses the account (nothing sent twice); another
workspace's key naming the session gets 404."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from tests.support.crm import running_crm
from tests.support.stack import API_KEY, OTHER_KEY, service_env, stored_account
from tests.support.streams import events_where, stream_messages
from tests.support.telethon_wire import (
    gateway_on_the_wire_fake,
    hand_over_session,
    telethon_gateway,
)

from switchboard.events.catalog.common import Channel, ChatType
from switchboard.events.catalog.crm import ContactErased
from switchboard.mtproto.app import create_app as create_gateway
from switchboard.outbound.app import create_app as create_outbound
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.runtime.testing.faults import sealed_publish_times_out_once
from switchboard.sandbox import Sandbox

FLOODS = "switchboard_mtproto_flood_waits_total"
pytestmark = pytest.mark.e2e
ADMIN = "ua-e2e-operator"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
SESSION = "ann"


@dataclass
class Env:
    box: Sandbox
    sender: Any
    friend: Any
    outbound: httpx.AsyncClient
    nats_url: str
    key_id: str


@pytest.fixture
async def env(
    nats_url: str, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    async with _platform(nats_url, postgres_url, tmp_path, monkeypatch) as platform:
        yield platform


@asynccontextmanager
async def _platform(
    nats_url: str, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    """Outbound and a gateway holding workspace demo's session Ann (on the wire-level
    fake), sharing one object store as a deployment's do."""
    box = Sandbox()
    await gateway_on_the_wire_fake(box, monkeypatch)
    for key, value in service_env(nats_url, SWITCHBOARD_ADMIN_TOKEN=ADMIN).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SWITCHBOARD_OBJECTS__LOCAL_DIR", str(tmp_path / "objects"))
    sender, _ = box.mtproto.add_user("15550002222", first_name="Ann")
    friend, _ = box.mtproto.add_user("15550004444", username="friend_ua")
    gateway_settings = telethon_gateway(
        nats_url,
        postgres_url,
        admin_token=ADMIN,
        api_keys=f"{API_KEY}=demo,{OTHER_KEY}=other",
        reconnect_initial_s=0.1,
        reconnect_max_s=1.0,
    )
    try:
        async with AsyncExitStack() as stack:
            bus = await Bus.connect(nats_url, name="setup")
            await bus.provision()
            await bus.close()
            gateway = await stack.enter_async_context(serve_app(create_gateway(gateway_settings)))
            out = await stack.enter_async_context(
                serve_app(create_outbound(load_settings(OutboundSettings)))
            )
            async with httpx.AsyncClient(base_url=gateway, headers=AUTH, timeout=30) as http:
                issued = box.mtproto_wire.issue_session(sender)
                await hand_over_session(http, SESSION, issued["session"])
            await eventually(lambda: _registered(nats_url), timeout=30, message="registered")
            async with httpx.AsyncClient(base_url=out, headers=AUTH, timeout=30) as client:
                yield Env(box, sender, friend, client, nats_url, issued["key_id"])
    finally:
        await box.aclose()


async def _registered(nats_url: str) -> bool:
    """The gateway has put the connected session in the accounts registry."""
    found = await stored_account(nats_url, Channel.MTPROTO, SESSION)
    return found is not None and found.workspace_id == "demo"


async def _events(nats_url: str, message_id: str) -> list[Any]:
    return await events_where(nats_url, "DELIVERY", message_id=message_id)


async def _send_text(env: Env, message_id: str, text: str) -> None:
    """Ask outbound to send ``text`` from the user account to the friend (202)."""
    r = await env.outbound.post(
        "/v1/messages", json=_body(message_id, {"kind": "text", "text": text})
    )
    assert r.status_code == 202, r.text


def _body(message_id: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "channel": "mtproto",
        "account": SESSION,
        "recipient": "@friend_ua",
        "content": content,
    }


async def test_one_body_shape_sends_text_and_a_photo_as_the_user(env: Env) -> None:
    photo = {
        "kind": "photo",
        "source": {"data_base64": base64.b64encode(b"\x89PNG fake" * 50).decode()},
        "caption": "our catalogue",
    }
    for message_id, content in (
        ("ua-text-1", {"kind": "text", "text": "hello from Ann"}),
        ("ua-photo-1", photo),
    ):
        r = await env.outbound.post("/v1/messages", json=_body(message_id, content))
        assert r.status_code == 202, r.text

    async def both_sent() -> list[str] | None:
        names = []
        for message_id in ("ua-text-1", "ua-photo-1"):
            events = await _events(env.nats_url, message_id)
            sent = [d for d in events if d.model.name == "delivery.sent"]
            if not sent:
                return None
            names.append(sent[0].model.provider_message_id)
        return names

    provider_ids = await eventually(both_sent, timeout=60, message="both sent")
    # Two sends asked for together may leave in either order (each takes its own slot).
    chat = {str(m["id"]): m for m in env.box.mtproto.messages(env.sender, env.friend)}
    assert [(chat[i]["text"], (chat[i].get("media") or {}).get("kind")) for i in provider_ids] == [
        ("hello from Ann", None),
        ("our catalogue", "photo"),
    ]
    history = [
        d.model
        for d in await stream_messages(env.nats_url, "CONV")
        if d.model.name == "conv.message_sent"
    ]
    assert {(m.message_id, m.content_kind) for m in history} >= {
        ("ua-text-1", "text"),
        ("ua-photo-1", "photo"),
    }
    # The same message again: the API answers from its record, nothing is sent twice.
    again = await env.outbound.post(
        "/v1/messages", json=_body("ua-text-1", {"kind": "text", "text": "hello from Ann"})
    )
    assert again.status_code in (200, 202), again.text
    assert len(env.box.mtproto.messages(env.sender, env.friend)) == 2

    async def erased() -> bool:
        # MTPROTO keeps what it stores for 90 days: each answered send leaves it, with the
        # peer, the text and the photo it carried.
        bus = await Bus.connect(env.nats_url, name="ua-scan")
        try:
            info = await bus.js.stream_info("MTPROTO", subjects_filter="cmd.mtproto.deliver.>")
        finally:
            await bus.close()
        return not info.state.subjects

    await eventually(erased, message="the handled sends erased from MTPROTO")


async def test_another_workspace_naming_the_session_gets_404(env: Env) -> None:
    r = await env.outbound.post(
        "/v1/messages",
        json=_body("ua-other-1", {"kind": "text", "text": "not mine"}),
        headers=OTHER,
    )
    assert r.status_code == 404, r.text


async def test_what_a_user_account_cannot_send_is_422_naming_the_field(env: Env) -> None:
    body = _body("ua-kb-1", {"kind": "text", "text": "pick one"})
    body["keyboard"] = {"type": "inline", "rows": [[{"text": "A", "callback_data": "a"}]]}
    r = await env.outbound.post("/v1/messages", json=body)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == ("unsupported_content", "keyboard")
    sticker = _body("ua-st-1", {"kind": "sticker", "source": {"file_id": "CAADAgAD"}})
    r = await env.outbound.post("/v1/messages", json=sticker)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "content.kind"
    assert await _events(env.nats_url, "ua-kb-1") == []
    assert env.box.mtproto.messages(env.sender, env.friend) == []


async def test_a_flood_wait_pauses_the_account_and_the_message_goes_once_after(
    env: Env,
) -> None:
    floods = REGISTRY.get_sample_value(FLOODS, {"operation": "send_message"}) or 0.0
    env.box.mtproto.add_fault(method="messages.sendMessage", seconds=2, times=1)
    await _send_text(env, "ua-flood-1", "after the wait")

    async def sent_after_retrying() -> list[str] | None:
        names = [d.model.name for d in await _events(env.nats_url, "ua-flood-1")]
        return names if "delivery.sent" in names else None

    names = await eventually(sent_after_retrying, timeout=60, message="sent after the wait")
    assert "delivery.retrying" in names
    # On a loaded machine the gateway may also answer too late once (a gateway_timeout
    # retry); the flood wait is among the retries either way.
    retries = [
        d.model.error_code
        for d in await _events(env.nats_url, "ua-flood-1")
        if d.model.name == "delivery.retrying"
    ]
    assert "FLOOD_WAIT_2" in retries, retries
    chat = env.box.mtproto.messages(env.sender, env.friend)
    assert [m["text"] for m in chat] == ["after the wait"]
    # The gateway (in this process) counted the flood wait like any other.
    assert REGISTRY.get_sample_value(FLOODS, {"operation": "send_message"}) == floods + 1


async def test_a_read_by_the_recipient_becomes_a_read_receipt_in_the_crm(
    env: Env, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in (1, 2):
        body = _body(f"ua-read-{i}", {"kind": "text", "text": f"read me {i}"})
        r = await env.outbound.post("/v1/messages", json=body)
        assert r.status_code == 202, r.text

    async def sent() -> list[str] | None:
        ids = []
        for i in (1, 2):
            events = await _events(env.nats_url, f"ua-read-{i}")
            found = [d.model for d in events if d.model.name == "delivery.sent"]
            if not found:
                return None
            ids.append(found[0].provider_message_id)
        return ids

    provider_ids = await eventually(sent, timeout=60, message="sent")
    # The recipient reads the chat: Telegram tells the sender (updateReadHistoryOutbox).
    latest = env.box.mtproto.messages(env.sender, env.friend)[-1]["id"]
    env.box.mtproto_wire.mark_read(env.friend, env.sender, latest)

    async def read() -> list[Any] | None:
        found = []
        for i in (1, 2):
            events = await _events(env.nats_url, f"ua-read-{i}")
            found += [d.model for d in events if d.model.name == "delivery.receipt"]
        return found if len(found) == 2 else None

    receipts = await eventually(read, timeout=30, message="read receipts")
    chat_id = str(env.friend.id)  # the chat Telegram numbers by the friend's id
    assert sorted(
        (r.message_id, r.status, r.provider_message_id, r.recipient, r.account) for r in receipts
    ) == [
        ("ua-read-1", "read", provider_ids[0], chat_id, SESSION),
        ("ua-read-2", "read", provider_ids[1], chat_id, SESSION),
    ]
    # The friend answers at once: the chat written to is read from the first send on
    # (caught up at the next tick, live after), though nobody subscribed to it; before,
    # only subscribed chats were read and the answer never reached the CRM.
    env.box.mtproto.post(env.sender, "thanks, got both", sender=env.friend)
    # The CRM shows both, read, in the conversation with the recipient, beside the answer:
    # addressed as "@friend_ua", they are filed under the chat the gateway resolved (they
    # made a conversation "@friend_ua" of their own before, which the answer never joined).
    async with running_crm(env.nats_url, postgres_url, monkeypatch) as crm:
        inbox = await crm.until(
            "/v1/conversations",
            lambda body: any(c["chat_id"] == chat_id for c in body["items"]),
            channel="mtproto",
            account=SESSION,
        )
        conversation = next(c for c in inbox["items"] if c["chat_id"] == chat_id)

        def both_read_and_answered(body: Any) -> bool:
            mine = [m for m in body["items"] if str(m["message_id"]).startswith("ua-read-")]
            answered = [m for m in body["items"] if m["direction"] == "in"]
            return (
                len(mine) == 2
                and all(m["status"] == "read" for m in mine)
                and [m["text"] for m in answered] == ["thanks, got both"]
            )

        shown = await crm.until(
            f"/v1/conversations/{conversation['id']}/messages", both_read_and_answered
        )
        everything = await crm.get("/v1/conversations", channel="mtproto", account=SESSION)
    texts = [m["text"] for m in shown["items"] if str(m["message_id"]).startswith("ua-read-")]
    assert sorted(texts) == ["read me 1", "read me 2"]  # two sends leave in either order
    assert [c["chat_id"] for c in everything["items"]] == [chat_id]


async def _failed(env: Env, message_id: str) -> Any:
    async def found() -> Any:
        events = await _events(env.nats_url, message_id)
        return next((d.model for d in events if d.model.name == "delivery.failed"), None)

    return await eventually(found, timeout=30, message=f"{message_id} failed")


async def test_a_restricted_account_fails_as_unusable(env: Env) -> None:
    env.box.mtproto.add_fault(
        user=env.sender, method="messages.sendMessage", error="PEER_FLOOD", code=400, times=1
    )
    await _send_text(env, "ua-spam-1", "hello")
    failed = await _failed(env, "ua-spam-1")
    assert failed.error_code == "account_unusable"
    assert "PEER_FLOOD" in failed.reason

    async def restricted() -> bool:
        found = await stored_account(env.nats_url, Channel.MTPROTO, SESSION)
        return found is not None and "restricted_until" in found.settings

    await eventually(restricted, timeout=30, message="the registry says restricted")
    # Restricted for a while: the next send fails at once, without calling Telegram.
    await _send_text(env, "ua-spam-2", "again")
    again = await _failed(env, "ua-spam-2")
    assert (again.error_code, "restricted" in again.reason) == ("account_unusable", True)
    assert env.box.mtproto.messages(env.sender, env.friend) == []


async def test_a_revoked_session_is_marked_and_its_sends_fail_without_a_call(env: Env) -> None:
    env.box.mtproto.revoke(env.key_id)
    await _send_text(env, "ua-gone-1", "hello")
    assert (await _failed(env, "ua-gone-1")).error_code == "account_unusable"

    async def marked() -> bool:
        found = await stored_account(env.nats_url, Channel.MTPROTO, SESSION)
        return found is not None and found.settings.get("status") == "revoked"

    await eventually(marked, timeout=30, message="the registry says revoked")
    await _send_text(env, "ua-gone-2", "again")
    failed = await _failed(env, "ua-gone-2")
    assert failed.error_code == "account_unusable"
    assert "revoked" in failed.reason
    assert env.box.mtproto.messages(env.sender, env.friend) == []


async def test_a_campaign_with_user_accounts_refuses_content_they_cannot_send(env: Env) -> None:
    body = {
        "campaign_id": "ua-stickers",
        "channel": "mtproto",
        "accounts": [SESSION],
        "content": {"kind": "sticker", "source": {"file_id": "CAADAgAD"}},
        "recipients": ["@friend_ua"],
    }
    r = await env.outbound.post("/v1/campaigns", json=body)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == ("unsupported_content", "content.kind")


async def test_a_bus_timeout_while_announcing_a_read_loses_neither_it_nor_the_connection(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read arrives while the bus times out on its receipt (a loaded NATS, as in a full
    run): the receipt is announced once the bus answers, once, and the session's Telegram
    connection stays up. Before, the timeout ended the connection, and the read it carried
    was lost for good: Telegram does not send an update twice."""
    await _send_text(env, "ua-blip-1", "blip read")

    async def sent() -> bool:
        return any(
            d.model.name == "delivery.sent" for d in await _events(env.nats_url, "ua-blip-1")
        )

    await eventually(sent, timeout=60, message="sent")
    failed = sealed_publish_times_out_once(monkeypatch, "delivery.receipt")
    reconnects = REGISTRY.get_sample_value("switchboard_mtproto_reconnects_total") or 0.0
    latest = env.box.mtproto.messages(env.sender, env.friend)[-1]["id"]
    env.box.mtproto_wire.mark_read(env.friend, env.sender, latest)

    async def read() -> list[Any]:
        events = await _events(env.nats_url, "ua-blip-1")
        found = [d.model for d in events if d.model.name == "delivery.receipt"]
        assert found
        return found

    (receipt,) = await eventually(read, timeout=30, message="the read receipt")
    assert receipt.status == "read"
    assert failed == ["ua-blip-1"]  # the bus did time out on it
    assert (REGISTRY.get_sample_value("switchboard_mtproto_reconnects_total") or 0.0) == reconnects


async def test_an_erased_person_leaves_the_gateway_s_records_of_sends_to_them(
    env: Env, postgres_url: str
) -> None:
    """For each send through a user account the gateway keeps the chat and the recipient
    outbound named (the read receipt names them). When the CRM erases the person
    (``crm.contact_erased`` with the keyed hash of their identity), both become the erased
    marker, as in the CRM's tables. Before, they stayed in the gateway's tables for ever."""
    await _send_text(env, "ua-er-1", "soon forgotten")

    async def sent() -> bool:
        events = await _events(env.nats_url, "ua-er-1")
        return any(d.model.name == "delivery.sent" for d in events)

    await eventually(sent, timeout=60, message="sent")
    conn = await asyncpg.connect(postgres_url)
    try:  # the session follows the chat it wrote to
        follows = await conn.fetchval(
            "SELECT count(*) FROM mtproto.subscriptions WHERE chat_id = $1", str(env.friend.id)
        )
    finally:
        await conn.close()
    assert follows == 1
    hashed = pii.identity_hash("demo", "mtproto", str(env.friend.id))
    bus = await Bus.connect(env.nats_url, name="test-erasure")
    try:
        erased = ContactErased(contact_id="ct_friend", identity_hashes=[hashed])
        await bus.publish(erased, workspace_id="demo")
    finally:
        await bus.close()
    conn = await asyncpg.connect(postgres_url)
    try:

        async def scrubbed() -> tuple[str, str]:
            row = await conn.fetchrow(
                "SELECT chat_id, recipient FROM mtproto.sends WHERE message_id = 'ua-er-1'"
            )
            assert row is not None
            assert row["chat_id"].startswith("erased:"), dict(row)
            return row["chat_id"], row["recipient"]

        found = await eventually(scrubbed, timeout=30, message="the record scrubbed")

        # the chat was followed when the session wrote to it; the follow, with the
        # friend's name and username, goes too
        async def unfollowed() -> bool:
            left = await conn.fetchval(
                "SELECT count(*) FROM mtproto.subscriptions WHERE chat_id = $1",
                str(env.friend.id),
            )
            return left == 0

        await eventually(unfollowed, timeout=30, message="the follow forgotten")
    finally:
        await conn.close()
    assert found == (pii.erased_marker(hashed), pii.erased_marker(hashed))


async def test_formatted_texts_and_template_posts_read_as_a_bot_s_would(env: Env) -> None:
    """A user account's HTML was a 422 ("reads no parse mode") and a calendar post's
    template reached it as its words alone (`<b>Xmas</b>` became `Xmas`, not bold): both
    now go as Telegram's message entities, as a bot's parse mode shows them."""
    html = {"kind": "text", "text": '<b>Sale</b> at <a href="https://shop.test">shop</a>',
            "parse_mode": "HTML"}  # fmt: skip
    r = await env.outbound.post("/v1/messages", json=_body("ua-html-1", html))
    assert r.status_code == 202, r.text
    r = await env.outbound.post(
        "/v1/templates", json={"name": "daily", "body": "<b>{{ title }}</b> <i>{{ deal }}</i>"}
    )
    assert r.status_code == 201, r.text
    at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    post = {
        "destination": {"channel": "mtproto", "account": SESSION, "chat": "@friend_ua"},
        "at": at,
        "template": {"name": "daily", "variables": {"title": "Xmas <3", "deal": "-30%"}},
    }
    r = await env.outbound.post("/v1/calendar/posts", json=post)
    assert r.status_code == 201, r.text

    async def both() -> list[dict[str, Any]] | None:
        found = env.box.mtproto.messages(env.sender, env.friend)
        return found if len(found) == 2 else None

    chat = sorted(await eventually(both, timeout=60, message="both sent"), key=lambda m: m["text"])
    assert [(m["text"], m["entities"]) for m in chat] == [
        ("Sale at shop", [
            {"type": "bold", "offset": 0, "length": 4},
            {"type": "text_link", "offset": 8, "length": 4, "url": "https://shop.test"},
        ]),
        ("Xmas <3 -30%", [
            {"type": "bold", "offset": 0, "length": 7},
            {"type": "italic", "offset": 8, "length": 4},
        ]),
    ]  # fmt: skip


async def test_a_user_account_edits_and_deletes_what_it_sent(env: Env) -> None:
    """`/v1/messages/{id}/edit` and `/delete` of a user account's send were a 422 ("Telegram
    only") though Telegram lets an account change its own messages: they now go to the
    gateway holding the session and end in `delivery.interaction_applied`; what a user
    account has no form for (buttons, a bot's callback answer) is still a 422 naming it."""
    await _send_text(env, "ua-change-1", "price is 10")

    async def sent() -> bool:
        events = await _events(env.nats_url, "ua-change-1")
        return any(d.model.name == "delivery.sent" for d in events)

    await eventually(sent, timeout=60, message="sent")
    r = await env.outbound.post("/v1/messages/ua-change-1/edit", headers=OTHER, json={"text": "x"})
    assert r.status_code == 404, r.text
    buttons = {"text": "x", "keyboard": {"rows": [[{"text": "A", "callback_data": "a"}]]}}
    r = await env.outbound.post("/v1/messages/ua-change-1/edit", json=buttons)
    assert (r.status_code, r.json().get("field")) == (422, "keyboard"), r.text
    callback = {"channel": "mtproto", "account": SESSION, "callback_query_id": "1",
                "request_id": "cb-1"}  # fmt: skip
    r = await env.outbound.post("/v1/callbacks/answer", json=callback)
    assert (r.status_code, r.json().get("field")) == (422, "channel"), r.text

    edit = {"text": "price is <b>12</b>", "parse_mode": "HTML"}
    r = await env.outbound.post("/v1/messages/ua-change-1/edit", json=edit)
    assert r.status_code == 202, r.text
    edit_request = r.json()["request_id"]

    async def edited() -> dict[str, Any] | None:
        found = env.box.mtproto.messages(env.friend, env.sender)
        return found[0] if found and found[0]["text"] == "price is 12" else None

    shown = await eventually(edited, timeout=60, message="edited")
    assert shown["entities"] == [{"type": "bold", "offset": 9, "length": 2}]
    r = await env.outbound.post("/v1/messages/ua-change-1/delete", json={})
    assert r.status_code == 202, r.text
    delete_request = r.json()["request_id"]

    async def applied() -> bool:
        found = await events_where(env.nats_url, "DELIVERY", message_id="ua-change-1")
        done = {d.model.request_id for d in found if d.model.name == "delivery.interaction_applied"}
        return {edit_request, delete_request} <= done

    await eventually(applied, timeout=60, message="both applied")
    assert env.box.mtproto.messages(env.friend, env.sender) == []


async def test_a_post_to_a_channel_opens_a_channel_s_conversation_with_its_words(
    env: Env,
) -> None:
    """A send to a channel opened a *private* conversation without a title (the CRM keeps
    a conversation's first kind: the channel's own posts read later could not fix it), and
    its HTML reached the timeline as tags. The gateway's answer names the chat's kind and
    title, and `conv.message_sent` carries the words the readers see."""
    channel = env.box.mtproto.add_channel("Ann's News", "news_ua", creator=env.sender)
    body = _body("ua-post-1", {"kind": "text", "text": "<b>New</b> stock", "parse_mode": "HTML"})
    r = await env.outbound.post("/v1/messages", json={**body, "recipient": "@news_ua"})
    assert r.status_code == 202, r.text

    async def announced() -> Any:
        found = [
            d.model
            for d in await stream_messages(env.nats_url, "CONV")
            if d.model.name == "conv.message_sent" and d.model.message_id == "ua-post-1"
        ]
        return found[0] if found else None

    sent = await eventually(announced, timeout=60, message="announced")
    assert (sent.chat.id, sent.chat.type, sent.chat.title) == (
        f"-100{channel.id}",
        ChatType.CHANNEL,
        "Ann's News",
    )
    assert sent.text == "New stock"


async def test_an_uploaded_file_goes_by_its_id_on_a_default_nats_server(
    nats_default_server: EmbeddedNats,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On NATS's default 1 MB ``max_payload`` an uploaded 800 kB file sent by a user account
    never left: outbound put its bytes into the gateway's command (over the payload once in
    base64). The command now names the upload and the gateway reads it from the store it
    shares with outbound; another workspace's upload id is refused without a call."""
    data = b"%PDF-1.4 " + bytes(range(256)) * 3200  # about 800 kB
    async with _platform(nats_default_server.url, postgres_url, tmp_path, monkeypatch) as env:
        r = await env.outbound.post(
            "/v1/uploads", files={"file": ("price-list.pdf", data, "application/pdf")}
        )
        assert r.status_code == 201, r.text
        upload = r.json()["upload_id"]
        document = {"kind": "document", "source": {"upload_id": upload}, "caption": "prices"}
        r = await env.outbound.post("/v1/messages", json=_body("ua-upload-1", document))
        assert r.status_code == 202, r.text

        async def delivered() -> dict[str, Any] | None:
            found = env.box.mtproto.messages(env.friend, env.sender)
            return found[0] if found else None

        shown = await eventually(delivered, timeout=60, message="the document arrived")
        assert (shown["text"], shown["media"]["kind"]) == ("prices", "document")
        assert shown["media"]["file_size"] == len(data)
        r = await env.outbound.post(
            "/v1/messages", json=_body("ua-upload-2", document), headers=OTHER
        )
        assert r.status_code == 404, r.text
