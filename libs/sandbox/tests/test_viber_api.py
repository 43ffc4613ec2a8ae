"""Viber REST bot API: auth, set_webhook's callback check, send_message rules, account info."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from switchboard.sandbox.testing import serve, wait_until

from .messaging_support import VIBER_TOKEN, HookReceiver, viber_env

USER = "01234567890A="


def signed_by_token(raw: bytes, header: str) -> bool:
    digest = hmac.new(VIBER_TOKEN.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest, header)


async def test_bad_token_is_status_2_with_http_200() -> None:
    async with viber_env() as env:
        response = await env.call("get_account_info", token="wrong")
        assert response.status_code == 200
        assert response.json() == {"status": 2, "status_message": "invalidAuthToken"}
        missing = await env.http.post("/pa/send_message", json={})
        assert missing.json() == {"status": 2, "status_message": "invalidAuthToken"}
        legacy = await env.http.post("/pa/get_account_info", json={"auth_token": VIBER_TOKEN})
        assert legacy.json()["status"] == 0  # the older auth_token body field also works


async def test_set_webhook_posts_a_signed_webhook_event_and_needs_a_200() -> None:
    receiver = HookReceiver()
    async with viber_env() as env, serve(receiver.app) as hook:
        receiver.fail_next(1, status=500)
        refused = await env.call("set_webhook", {"url": f"{hook}/viber"})
        assert refused.json() == {"status": 1, "status_message": "invalidUrl"}
        assert env.bot.webhook.url == ""
        answer = await env.call(
            "set_webhook",
            {"url": f"{hook}/viber", "event_types": ["delivered", "seen"], "send_name": True},
        )
        body = answer.json()
        assert (body["status"], body["status_message"]) == (0, "ok")
        assert body["event_types"] == ["delivered", "seen"]
        assert body["chat_hostname"]
        [check] = receiver.hits
        assert check.body["event"] == "webhook"
        assert isinstance(check.body["timestamp"], int)
        assert check.body["timestamp"] > 10**12  # milliseconds
        assert isinstance(check.body["message_token"], int)
        assert signed_by_token(check.raw, check.headers["x-viber-content-signature"])
        account = (await env.call("get_account_info")).json()
        assert account["webhook"] == f"{hook}/viber"
        assert account["uri"] == "testshop"
        assert account["id"].startswith("pa:")
        removed = await env.call("set_webhook", {"url": ""})
        assert removed.json()["status"] == 0
        assert env.bot.webhook.url == ""


async def test_set_webhook_validation() -> None:
    async with viber_env() as env:
        assert (await env.call("set_webhook", {})).json()["status"] == 4
        ftp = await env.call("set_webhook", {"url": "ftp://example.com/hook"})
        assert ftp.json() == {"status": 1, "status_message": "invalidUrl"}
        events = await env.call(
            "set_webhook", {"url": "https://example.com/h", "event_types": ["bogus"]}
        )
        assert events.json() == {"status": 3, "status_message": "badData"}


async def test_send_message_answers_with_a_token_then_delivered_and_seen_callbacks() -> None:
    receiver = HookReceiver()
    async with viber_env() as env, serve(receiver.app) as hook:
        assert await env.sandbox.viber.set_webhook(env.bot, f"{hook}/viber")
        answer = await env.send_text(USER, "Your order shipped", tracking_data="order-42")
        assert answer["status"] == 0
        assert answer["status_message"] == "ok"
        assert isinstance(answer["message_token"], int)
        assert answer["chat_hostname"]
        await wait_until(lambda: len(receiver.hits) == 3, message="webhook, delivered, seen")
        callbacks = [hit.body for hit in receiver.hits[1:]]
        assert [c["event"] for c in callbacks] == ["delivered", "seen"]
        for hit in receiver.hits:
            assert signed_by_token(hit.raw, hit.headers["x-viber-content-signature"])
        for callback in callbacks:
            assert callback["message_token"] == answer["message_token"]
            assert callback["user_id"] == USER
            assert callback["timestamp"] > 10**12
        [sent] = env.sandbox.viber.sent_messages(env.bot, USER)
        assert sent["message"]["tracking_data"] == "order-42"


def send(**fields: Any) -> dict[str, Any]:
    return {"receiver": USER, "sender": {"name": "Shop"}, "type": "text", "text": "hi"} | fields


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (send(sender={"name": "x" * 29}), 3),
        (send(sender=None), 4),
        (send(receiver=None), 4),
        (send(text=None), 4),
        (send(type="hologram"), 3),
        (send(tracking_data="t" * 4001), 3),
        (send(keyboard={"Type": "keyboard", "Buttons": [{"Text": "no action"}]}), 4),
        (send(keyboard={"Type": "board", "Buttons": []}), 3),
        (send(type="picture", text="pic"), 4),
        (send(type="file", media="https://example.com/f.pdf", size=10), 4),
        (send(type="location", location={"lat": 95, "lon": 0}), 3),
        (send(type="sticker", sticker_id="smile"), 3),
    ],
)
async def test_send_message_validation(body: dict[str, Any], status: int) -> None:
    async with viber_env() as env:
        answer = (await env.call("send_message", body)).json()
        names = {3: "badData", 4: "missingData"}
        assert answer == {"status": status, "status_message": names[status]}
        assert env.sandbox.viber.sent_messages(env.bot) == []


async def test_request_bodies_over_30_kb_are_bad_data() -> None:
    async with viber_env() as env:
        padding = "x" * (30 * 1024)
        answer = (await env.call("send_message", send(text="hi", tracking_data=padding))).json()
        assert answer == {"status": 3, "status_message": "badData"}
        record = env.sandbox.recorder.requests(provider="viber")[-1]
        assert (record.error_code, record.ok) == (3, False)
        assert record.description is not None
        assert record.description.endswith("bytes, more than 30720")


KINDS: list[dict[str, Any]] = [
    send(
        keyboard={
            "Type": "keyboard",
            "Buttons": [{"ActionType": "reply", "ActionBody": "yes", "Text": "Yes"}],
        }
    ),
    send(type="picture", text="a cat", media="https://example.com/cat.jpg"),
    send(type="video", media="https://example.com/v.mp4", size=1000, duration=10),
    send(type="file", media="https://example.com/f.pdf", size=1000, file_name="f.pdf"),
    send(type="contact", contact={"name": "Olena", "phone_number": "+380501234567"}),
    send(type="location", location={"lat": 50.45, "lon": 30.52}),
    send(type="url", media="https://example.com/item/1"),
    send(type="sticker", sticker_id=46105),
    send(type="rich_media", rich_media={"Type": "rich_media", "Buttons": [{"ActionBody": "a"}]}),
]


@pytest.mark.parametrize("body", KINDS, ids=[str(k["type"]) for k in KINDS])
async def test_every_message_type_is_accepted(body: dict[str, Any]) -> None:
    async with viber_env() as env:
        answer = (await env.call("send_message", body)).json()
        assert answer["status"] == 0, answer


async def test_unsubscribed_and_unknown_receivers() -> None:
    async with viber_env() as env:
        env.sandbox.viber.add_user(env.bot, USER, "Olena", subscribed=False)
        assert await env.send_text(USER) == {"status": 6, "status_message": "receiverNotSubscribed"}
        env.sandbox.viber.config.unsubscribed_status = 5
        assert (await env.send_text(USER))["status"] == 5
        env.sandbox.viber.config.receivers = "strict"
        assert (await env.send_text("nobody=="))["status_message"] == "receiverNotRegistered"
        env.sandbox.viber.config.require_webhook = True
        env.sandbox.viber.add_user(env.bot, "known==", subscribed=True)
        assert await env.send_text("known==") == {"status": 10, "status_message": "webhookNotSet"}


async def test_user_details_and_unknown_methods() -> None:
    async with viber_env() as env:
        env.sandbox.viber.add_user(env.bot, USER, "Olena", country="UA")
        details = (await env.call("get_user_details", {"id": USER})).json()
        assert details["status"] == 0
        assert (details["user"]["id"], details["user"]["name"]) == (USER, "Olena")
        assert (await env.call("get_user_details", {})).json()["status"] == 4
        assert (await env.call("no_such_method")).status_code == 404
