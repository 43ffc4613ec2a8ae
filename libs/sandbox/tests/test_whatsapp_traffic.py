"""WhatsApp traffic: simulated users' messages of every type and statuses, via webhooks."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter

from switchboard.sandbox.testing import serve
from switchboard.sandbox.whatsapp.traffic import DEFAULT_MIX

from .messaging_support import APP_SECRET, PHONE_ID, TEMPLATE, HookReceiver, whatsapp_env

REQUIRED_FIELD = {
    "text": "text",
    "image": "image",
    "audio": "audio",
    "video": "video",
    "document": "document",
    "sticker": "sticker",
    "location": "location",
    "contacts": "contacts",
    "interactive": "interactive",
    "button": "button",
    "reaction": "reaction",
    "unsupported": "errors",
}


async def test_generated_traffic_covers_every_type_and_arrives_signed() -> None:
    receiver = HookReceiver()
    async with whatsapp_env() as env, serve(receiver.app) as hook:
        env.sandbox.whatsapp.config.statuses.sent = False
        env.sandbox.whatsapp.config.statuses.delivered = False  # only generated statuses
        await env.sandbox.whatsapp.set_webhook(PHONE_ID, f"{hook}/hook")
        for user in ("4915100000001", "4915100000002"):
            assert (await env.send(user, "template", **TEMPLATE)).status_code == 200
        mix = {kind: 1.0 for kind in DEFAULT_MIX}
        events = await env.sandbox.whatsapp.generate(
            PHONE_ID, count=260, rate=5000, mix=mix, seed=3, users=10
        )
        assert len(events) == 260
        kinds = Counter(event.kind for event in events)
        assert set(kinds) == set(DEFAULT_MIX)
        await env.sandbox.whatsapp.wait_delivered(PHONE_ID)
        assert len(receiver.hits) == 260
        seen: set[str] = set()
        for hit in receiver.hits:
            digest = hmac.new(APP_SECRET.encode(), hit.raw, hashlib.sha256).hexdigest()
            assert hit.headers["x-hub-signature-256"] == f"sha256={digest}"
            value = hit.body["entry"][0]["changes"][0]["value"]
            if "statuses" in value:
                assert value["statuses"][0]["status"] in ("sent", "delivered", "read")
                seen.add("status")
                continue
            [message] = value["messages"]
            assert message["id"].startswith("wamid.")
            assert message["timestamp"].isdigit()
            assert value["contacts"][0]["wa_id"] == message["from"]
            assert value["contacts"][0]["profile"]["name"]
            assert REQUIRED_FIELD[message["type"]] in message
            seen.add(message["type"])
        assert seen == set(REQUIRED_FIELD) | {"status"}
        # every user who wrote may now get free-form replies
        sender = env.sandbox.whatsapp.inbound_messages(PHONE_ID)[-1]["from"]
        env.sandbox.whatsapp.config.limits.enabled = False
        assert (await env.send(sender, body="thanks for writing")).status_code == 200
