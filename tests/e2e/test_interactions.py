"""Interactions with sent messages, against the sandbox Telegram with real NATS: a pressed
inline button is answered through the API (the sandbox records ``answerCallbackQuery``), a
sent message's text and keyboard are edited and the message deleted, each ending in a
``delivery.interaction_*`` event; a second answer to one query fails with the reason, and
another workspace's message does not exist."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.support.outbound import outbound_stack, sandbox_account, telegram_shop
from tests.support.stack import API_KEY, OTHER_KEY
from tests.support.streams import events_where

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import InteractionApplied, InteractionFailed
from switchboard.runtime.accounts import Account
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
TOKEN = "300000041:inter-a"
A = {"Authorization": f"Bearer {API_KEY}"}  # workspace demo, account shop
B = {"Authorization": f"Bearer {OTHER_KEY}"}  # workspace other
CHAT = 4101


@dataclass
class Env:
    box: Sandbox
    url: str
    http: httpx.AsyncClient
    nats_url: str

    def calls(self, method: str) -> list[Any]:
        return [r for r in self.box.recorder.requests(provider="telegram", method=method) if r.ok]

    def message(self, provider_id: str) -> dict[str, Any] | None:
        found = self.box.telegram.messages(TOKEN, CHAT)
        return next((m for m in found if str(m["message_id"]) == provider_id), None)


def accounts(sandbox: str) -> list[Account]:
    """The bot ``shop`` and a Viber bot (which has no interactions) of workspace demo."""
    return [
        telegram_shop(sandbox, TOKEN),
        sandbox_account(sandbox, Channel.VIBER, "vshop", {"token": "viber-inter"}),
    ]


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "inter_bot")
    async with outbound_stack(box, nats_url, monkeypatch, accounts, timeout=30) as stack:
        yield Env(box, stack.url, stack.http, nats_url)


async def send_with_buttons(env: Env, message_id: str) -> str:
    r = await env.http.post(
        f"{env.url}/v1/messages",
        json={
            "message_id": message_id,
            "channel": "telegram",
            "account": "shop",
            "recipient": str(CHAT),
            "content": {"kind": "text", "text": "Book Monday?"},
            "keyboard": {
                "type": "inline",
                "rows": [
                    [
                        {"text": "Yes", "callback_data": "yes"},
                        {"text": "No", "callback_data": "no"},
                    ],
                    [{"text": "Site", "url": "https://example.com/book"}],
                ],
            },
        },
        headers=A,
    )
    assert r.status_code == 202, r.text

    async def sent() -> str | None:
        found = (await env.http.get(f"{env.url}/v1/messages/{message_id}", headers=A)).json()
        return found.get("provider_message_id") if found.get("status") == "sent" else None

    provider_id: str = await eventually(sent, timeout=30)
    return provider_id


async def outcomes(env: Env, request_id: str) -> list[Any]:
    return [d.model for d in await events_where(env.nats_url, "DELIVERY", request_id=request_id)]


async def test_a_pressed_button_is_answered_through_the_api(env: Env) -> None:
    provider_id = await send_with_buttons(env, "ask-1")
    query = await env.box.telegram.press_button(TOKEN, CHAT, int(provider_id), "yes")
    pressed = time.time()
    answer = {
        "request_id": "answer-1",
        "channel": "telegram",
        "account": "shop",
        "callback_query_id": query["id"],
        "text": "Booked for Monday",
        "show_alert": True,
    }
    r = await env.http.post(f"{env.url}/v1/callbacks/answer", json=answer, headers=A)
    assert r.status_code == 202, r.text

    async def answered() -> list[Any]:
        return env.calls("answerCallbackQuery")

    calls = await eventually(answered, timeout=30)
    assert len(calls) == 1
    assert calls[0].params["callback_query_id"] == query["id"]
    assert calls[0].params["text"] == "Booked for Monday"
    assert calls[0].params["show_alert"] is True
    print(f"button answered {1000 * (calls[0].at - pressed):.0f} ms after the press")
    applied = await eventually(lambda: outcomes(env, "answer-1"), timeout=30)
    assert isinstance(applied[0], InteractionApplied)
    # the same query again (a new request): Telegram refuses it, and the event says why
    again = {**answer, "request_id": "answer-2"}
    r = await env.http.post(f"{env.url}/v1/callbacks/answer", json=again, headers=A)
    assert r.status_code == 202, r.text
    failed = await eventually(lambda: outcomes(env, "answer-2"), timeout=30)
    assert isinstance(failed[0], InteractionFailed)
    assert "query is too old" in failed[0].reason
    # another workspace's account does not exist for it
    r = await env.http.post(
        f"{env.url}/v1/callbacks/answer", json={**answer, "request_id": "answer-3"}, headers=B
    )
    assert r.status_code == 404, r.text


async def test_a_sent_message_is_edited_and_deleted(env: Env) -> None:
    provider_id = await send_with_buttons(env, "ask-2")
    other = await env.http.post(
        f"{env.url}/v1/messages/ask-2/edit", json={"text": "theirs"}, headers=B
    )
    assert other.status_code == 404, other.text
    empty = await env.http.post(f"{env.url}/v1/messages/ask-2/edit", json={}, headers=A)
    assert empty.status_code == 422, empty.text
    # a text Telegram would refuse ("message is too long"): named at once, no call
    long = await env.http.post(
        f"{env.url}/v1/messages/ask-2/edit", json={"text": "x" * 4097}, headers=A
    )
    assert (long.status_code, long.json()["code"], long.json()["field"]) == (
        422, "too_long", "text"), long.text  # fmt: skip
    # HTML Telegram cannot parse ("can't parse entities" after the call, before)
    bad = await env.http.post(
        f"{env.url}/v1/messages/ask-2/edit",
        json={"text": "<b>Monday", "parse_mode": "HTML"},
        headers=A,
    )
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (
        422, "unsupported_content", "text"), bad.text  # fmt: skip
    r = await env.http.post(
        f"{env.url}/v1/messages/ask-2/edit",
        json={
            "request_id": "edit-1",
            "text": "Monday is booked",
            "keyboard": {"rows": [[{"text": "Cancel", "callback_data": "cancel"}]]},
        },
        headers=A,
    )
    assert r.status_code == 202, r.text
    applied = await eventually(lambda: outcomes(env, "edit-1"), timeout=30)
    assert isinstance(applied[0], InteractionApplied)
    assert applied[0].provider_message_id == provider_id
    message = env.message(provider_id)
    assert message is not None
    assert message["text"] == "Monday is booked"
    assert message["reply_markup"] == {
        "inline_keyboard": [[{"text": "Cancel", "callback_data": "cancel"}]]
    }
    # the keyboard alone: editMessageReplyMarkup, the text stays
    r = await env.http.post(
        f"{env.url}/v1/messages/ask-2/edit",
        json={
            "request_id": "edit-2",
            "keyboard": {"rows": [[{"text": "Site", "url": "https://x.example"}]]},
        },
        headers=A,
    )
    assert r.status_code == 202, r.text
    await eventually(lambda: outcomes(env, "edit-2"), timeout=30)
    assert len(env.calls("editMessageReplyMarkup")) == 1
    message = env.message(provider_id)
    assert message is not None
    assert message["text"] == "Monday is booked"
    assert message["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://x.example"
    r = await env.http.post(
        f"{env.url}/v1/messages/ask-2/delete", json={"request_id": "delete-1"}, headers=A
    )
    assert r.status_code == 202, r.text
    deleted = await eventually(lambda: outcomes(env, "delete-1"), timeout=30)
    assert isinstance(deleted[0], InteractionApplied)
    assert env.message(provider_id) is None
    assert len(env.calls("deleteMessage")) == 1
    assert len(env.calls("editMessageText")) == 1  # the 4097 characters never went out


async def test_a_message_not_sent_is_no_edit_or_deletion_to_accept(env: Env) -> None:
    """An edit or deletion names a sent message. Of a send still waiting for its time, or one
    cancelled, the API answered 202 and the lane failed it later (``unknown_message``), so a
    caller polled for an outcome the API could have given at once: now a 409 ``not_sent``
    naming the send's status, and nothing is published."""
    later = "2099-01-01T00:00:00Z"
    r = await env.http.post(
        f"{env.url}/v1/messages",
        json={"message_id": "later-1", "channel": "telegram", "account": "shop",
              "recipient": str(CHAT), "content": {"kind": "text", "text": "Soon"},
              "not_before": later},
        headers=A,
    )  # fmt: skip
    assert r.status_code == 202, r.text
    for action, body in (("edit", {"text": "Sooner", "request_id": "e-later"}),
                         ("delete", {"request_id": "d-later"})):  # fmt: skip
        r = await env.http.post(f"{env.url}/v1/messages/later-1/{action}", json=body, headers=A)
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "not_sent", r.text
        assert "queued" in r.json()["detail"], r.text
    r = await env.http.post(f"{env.url}/v1/messages/later-1/cancel", headers=A)
    assert r.status_code == 200, r.text
    r = await env.http.post(
        f"{env.url}/v1/messages/later-1/edit", json={"text": "x", "request_id": "e-gone"},
        headers=A,
    )  # fmt: skip
    assert (r.status_code, r.json()["code"]) == (409, "not_sent"), r.text
    assert "failed" in r.json()["detail"], r.text
    for request_id in ("e-later", "d-later", "e-gone"):
        assert await outcomes(env, request_id) == []


async def test_an_interaction_a_channel_has_not_is_refused_at_once(env: Env) -> None:
    """Viber and WhatsApp have no callback answers, edits or deletions for business
    messages: the API answered 202 and the lane failed it later (``unsupported``); now a 422
    naming the channel, and nothing is published."""
    answer = {"request_id": "v-answer", "channel": "viber", "account": "vshop",
              "callback_query_id": "q1", "text": "Done"}  # fmt: skip
    r = await env.http.post(f"{env.url}/v1/callbacks/answer", json=answer, headers=A)
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["field"]) == ("unsupported", "channel"), r.text
    assert await outcomes(env, "v-answer") == []


async def test_an_edit_over_telegram_s_limit_on_the_bus_fails_without_a_call(env: Env) -> None:
    """The bus path has the API's check: ``too_long`` at once, not Telegram's refusal after
    a call (and a breaker signal for what is the sender's fault)."""
    from switchboard.events.catalog.outbound import EditMessage
    from switchboard.runtime.bus import Bus

    provider_id = await send_with_buttons(env, "ask-long")
    edit = EditMessage(request_id="edit-long", channel=Channel.TELEGRAM, account="shop",
                       recipient=str(CHAT), provider_message_id=provider_id,
                       text="x" * 4097)  # fmt: skip
    unparsable = edit.model_copy(
        update={"request_id": "edit-html", "text": "<i>x", "parse_mode": "HTML"}
    )
    bus = await Bus.connect(env.nats_url, name="edits")
    try:
        for cmd in (edit, unparsable):
            await bus.publish(cmd, workspace_id="demo")
    finally:
        await bus.close()
    [failed] = await eventually(lambda: outcomes(env, "edit-long"), timeout=30)
    assert isinstance(failed, InteractionFailed)
    assert failed.error_code == "too_long"
    assert "4097 characters" in failed.reason
    # and HTML Telegram cannot parse
    [failed] = await eventually(lambda: outcomes(env, "edit-html"), timeout=30)
    assert isinstance(failed, InteractionFailed)
    assert (failed.error_code, failed.reason.split(":")[0]) == ("telegram_unsupported", "text")
    assert env.calls("editMessageText") == []
