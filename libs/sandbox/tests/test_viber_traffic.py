"""Viber traffic: messages, subscriptions and conversation starts through signed callbacks."""

from __future__ import annotations

from collections import Counter

from switchboard.sandbox.testing import serve
from switchboard.sandbox.viber.traffic import DEFAULT_MIX

from .messaging_support import HookReceiver, viber_env


async def test_generated_callbacks_cover_every_kind() -> None:
    receiver = HookReceiver()
    async with viber_env() as env, serve(receiver.app) as hook:
        viber = env.sandbox.viber
        await viber.set_webhook(env.bot, f"{hook}/cb", send_name=True)
        mix = {kind: 1.0 for kind in DEFAULT_MIX}
        items = await viber.generate(env.bot, count=220, rate=5000, mix=mix, seed=5, users=20)
        assert set(Counter(item.kind for item in items)) == set(DEFAULT_MIX)
        await viber.wait_delivered(env.bot)
        bodies = [hit.body for hit in receiver.hits[1:]]
        assert len(bodies) == 220
        events = Counter(body["event"] for body in bodies)
        assert set(events) == {"message", "subscribed", "unsubscribed", "conversation_started"}
        types = {body["message"]["type"] for body in bodies if body["event"] == "message"}
        assert types == {
            "text",
            "picture",
            "video",
            "file",
            "sticker",
            "contact",
            "location",
            "url",
        }
        for body in bodies:
            assert isinstance(body["message_token"], int)
        sender = next(b["sender"] for b in bodies if b["event"] == "message")
        assert sender["name"]
        # a user who wrote is subscribed and may be answered
        assert (await env.send_text(sender["id"]))["status"] == 0
