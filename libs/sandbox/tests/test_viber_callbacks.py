"""Viber callbacks: user events signed with the bot token, event_types filtering, retries."""

from __future__ import annotations

import hashlib
import hmac

from switchboard.sandbox.testing import serve, wait_until

from .messaging_support import VIBER_TOKEN, Hit, HookReceiver, viber_env

USER = "Ge24lrt0/Rq3wGFGBEqG0g=="


def verified(hit: Hit) -> bool:
    digest = hmac.new(VIBER_TOKEN.encode(), hit.raw, hashlib.sha256).hexdigest()
    return hit.headers["x-viber-content-signature"] == digest  # hex, no prefix


async def test_user_events_arrive_signed_with_the_bot_token() -> None:
    receiver = HookReceiver()
    async with viber_env() as env, serve(receiver.app) as hook:
        viber = env.sandbox.viber
        await viber.set_webhook(env.bot, f"{hook}/cb", send_name=True, send_photo=True)
        viber.add_user(env.bot, USER, "Olena", subscribed=False, avatar="https://a.example/o.jpg")
        await viber.inject_event(env.bot, USER, "conversation_started", context="ad-7")
        await viber.inject_event(env.bot, USER, "subscribed")
        await viber.inject_event(
            env.bot, USER, "message", message={"type": "text", "text": "Привіт"}
        )
        await viber.inject_event(env.bot, USER, "unsubscribed")
        await wait_until(lambda: len(receiver.hits) == 5, message="four user events")
        events = [hit.body for hit in receiver.hits[1:]]
        assert [e["event"] for e in events] == [
            "conversation_started",
            "subscribed",
            "message",
            "unsubscribed",
        ]
        assert all(verified(hit) for hit in receiver.hits)
        tokens = [e["message_token"] for e in events]
        assert len(set(tokens)) == 4
        for body in events:
            assert body["timestamp"] > 10**12
            assert body["chat_hostname"]
        started, subscribed, message, unsubscribed = events
        assert (started["type"], started["context"], started["subscribed"]) == (
            "open",
            "ad-7",
            False,
        )
        assert started["user"]["name"] == "Olena"
        assert started["user"]["avatar"] == "https://a.example/o.jpg"
        assert subscribed["user"]["id"] == USER
        assert message["sender"]["id"] == USER
        assert message["message"] == {"type": "text", "text": "Привіт"}
        assert unsubscribed["user_id"] == USER
        assert (await env.send_text(USER))["status"] == 6


async def test_event_types_filter_optional_events_only() -> None:
    receiver = HookReceiver()
    async with viber_env() as env, serve(receiver.app) as hook:
        answer = await env.call("set_webhook", {"url": f"{hook}/cb", "event_types": ["failed"]})
        assert answer.json()["status"] == 0
        await env.sandbox.viber.inject_event(env.bot, USER, "conversation_started")
        await env.sandbox.viber.inject_event(env.bot, USER, "message")
        await env.send_text(USER)  # delivered and seen are filtered out
        await env.sandbox.viber.wait_delivered(env.bot)
        events = [hit.body["event"] for hit in receiver.hits]
        assert events == ["webhook", "message"]
        message = receiver.hits[1].body
        assert "name" not in message["sender"]  # send_name defaults to false, as on Viber


async def test_callbacks_are_retried_on_non_2xx_and_failures_are_configurable() -> None:
    receiver = HookReceiver()
    async with viber_env() as env, serve(receiver.app) as hook:
        await env.sandbox.viber.set_webhook(env.bot, f"{hook}/cb")
        await env.http.put("/_sandbox/viber/settings", json={"callbacks": {"failed_rate": 1.0}})
        receiver.fail_next(2, status=502)
        answer = await env.send_text(USER)
        await wait_until(lambda: len(receiver.hits) == 2, message="failed callback delivered")
        failed = receiver.hits[1].body
        assert (failed["event"], failed["message_token"]) == ("failed", answer["message_token"])
        assert failed["desc"]
        # The sandbox records an attempt once it has the answer, after the receiver saw it
        # (under load the third was not recorded yet when the receiver's hit was counted).
        await wait_until(
            lambda: len(env.sandbox.recorder.deliveries(provider="viber")) == 4,
            message="every attempt recorded",
        )
        attempts = env.sandbox.recorder.deliveries(provider="viber")[1:]
        assert [(a.attempt, a.status) for a in attempts] == [(1, 502), (2, 502), (3, 200)]
