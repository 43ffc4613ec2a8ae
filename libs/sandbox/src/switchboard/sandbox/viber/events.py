"""What Viber users do, as callbacks: message, subscribed, unsubscribed, conversation_started.

Each event also changes the fake's state the way Viber does: a message subscribes the user
and clears their "100 messages without a reply" count, unsubscribing stops sends (status 6).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Mapping
from typing import Any

from switchboard.sandbox.viber.api import unreplied_key
from switchboard.sandbox.viber.callbacks import event, push
from switchboard.sandbox.viber.state import ViberBot, ViberState, ViberUser

USER_EVENTS = ("message", "subscribed", "unsubscribed", "conversation_started")
MESSAGE_KINDS = ("text", "picture", "video", "file", "sticker", "contact", "location", "url")
PHRASES = (
    "Привіт! Скільки коштує доставка?",
    "Hi, is the blue one in stock?",
    "Thanks!",
    "When will my order arrive?",
    "ok",
    "👍",
    "Можна оплатити карткою?",
)
MEDIA = "https://dl-media.viber.com/1/share/2/long/vibes/icon/image/0x0/"


def content(kind: str, rng: random.Random) -> dict[str, Any]:
    """A user message of `kind` as it appears in a `message` callback."""
    if kind == "text":
        return {"type": "text", "text": rng.choice(PHRASES)}
    if kind == "picture":
        name = f"IMG_{rng.randrange(1000, 9999)}.jpg"
        size = rng.randrange(20_000, 900_000)
        return {
            "type": "picture",
            "text": "",
            "media": MEDIA + name,
            "file_name": name,
            "size": size,
        }
    if kind == "video":
        size, seconds = rng.randrange(200_000, 20_000_000), rng.randrange(2, 180)
        return {"type": "video", "media": MEDIA + "clip.mp4", "size": size, "duration": seconds}
    if kind == "file":
        name = rng.choice(("invoice.pdf", "order.xlsx", "photo_scan.png"))
        size = rng.randrange(2_000, 5_000_000)
        return {"type": "file", "media": MEDIA + name, "size": size, "file_name": name}
    if kind == "sticker":
        sticker = rng.randrange(40_000, 49_000)
        return {"type": "sticker", "sticker_id": sticker, "media": f"{MEDIA}{sticker}.png"}
    if kind == "contact":
        phone = f"+380{rng.randrange(10**8, 10**9)}"
        return {"type": "contact", "contact": {"name": "Olena", "phone_number": phone}}
    if kind == "location":
        place = {"lat": round(rng.uniform(44, 52), 6), "lon": round(rng.uniform(22, 40), 6)}
        return {"type": "location", "location": place}
    if kind == "url":
        return {"type": "url", "media": f"https://example.com/item/{rng.randrange(1, 10**6)}"}
    raise ValueError(f"unknown viber message kind {kind!r}; known: {', '.join(MESSAGE_KINDS)}")


def user_event(
    state: ViberState,
    bot: ViberBot,
    user: ViberUser,
    name: str,
    *,
    message: Mapping[str, Any] | None = None,
    context: str | None = None,
) -> dict[str, Any]:
    """Apply a user's action to the fake's state and queue its callback; returns the body."""
    hook = bot.webhook
    profile = user.to_json(hook.send_name, hook.send_photo)
    if name == "message":
        if message is None or "type" not in message:
            raise ValueError("a message event needs a message with a type")
        user.subscribed = True
        state.limiter.reset(unreplied_key(bot, user.id))
        body = event(state, bot, "message", sender=profile, message=copy.deepcopy(dict(message)))
        body["silent"] = False
    elif name == "subscribed":
        user.subscribed = True
        body = event(state, bot, "subscribed", user=profile)
    elif name == "unsubscribed":
        user.subscribed = False
        body = event(state, bot, "unsubscribed", user_id=user.id)
    elif name == "conversation_started":
        body = event(state, bot, "conversation_started", type="open", user=profile)
        if context:
            body["context"] = context
        body["subscribed"] = user.subscribed
    else:
        raise ValueError(f"unknown user event {name!r}; known: {', '.join(USER_EVENTS)}")
    push(bot, body)
    return body
