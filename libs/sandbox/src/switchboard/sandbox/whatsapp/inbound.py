"""Messages users send to a business number, shaped like Meta's webhook `messages[]` items.

Used by injection (`WhatsAppProvider.inject_message`) and by the traffic generator. Every
inbound message opens (or renews) the 24 h customer-service window of its user.
"""

from __future__ import annotations

import copy
import hashlib
import random
from collections.abc import Mapping
from typing import Any

from switchboard.sandbox.whatsapp.errors import webhook_error
from switchboard.sandbox.whatsapp.state import WaNumber, WhatsAppState, digits
from switchboard.sandbox.whatsapp.webhook import queue

KINDS = (
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "unsupported",
)
PHRASES = (
    "Hi! Is this still available?",
    "How much does delivery cost?",
    "Thanks a lot",
    "When will my order arrive?",
    "Can I pay by card?",
    "Olá, qual o horário de funcionamento?",
    "Hola, ¿hacen envíos a Madrid?",
    "ok",
    "👍",
    "Please call me back",
)
DOCUMENTS = (
    ("invoice_2291.pdf", "application/pdf"),
    ("contract.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("prices.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
)
EMOJI = ("👍", "❤️", "😂", "😮", "🙏")


MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})


def media_id(rng: random.Random) -> str:
    """A media id as Meta hands them out (15-16 digits)."""
    return str(rng.randrange(10**15, 10**16))


def _sha(rng: random.Random) -> str:
    return hashlib.sha256(rng.randbytes(16)).hexdigest()


def content(kind: str, number: WaNumber, user_id: str, rng: random.Random) -> dict[str, Any]:
    """The type-specific part of an inbound message of `kind` (with `type`)."""
    if kind == "text":
        return {"type": "text", "text": {"body": rng.choice(PHRASES)}}
    if kind in ("image", "video"):
        mime = "image/jpeg" if kind == "image" else "video/mp4"
        out: dict[str, Any] = {"mime_type": mime, "sha256": _sha(rng), "id": media_id(rng)}
        if rng.random() < 0.5:
            out["caption"] = rng.choice(PHRASES)
        return {"type": kind, kind: out}
    if kind == "audio":
        audio = {"mime_type": "audio/ogg; codecs=opus", "sha256": _sha(rng), "id": media_id(rng)}
        return {"type": "audio", "audio": {**audio, "voice": rng.random() < 0.8}}
    if kind == "document":
        name, mime = rng.choice(DOCUMENTS)
        doc = {"filename": name, "mime_type": mime, "sha256": _sha(rng), "id": media_id(rng)}
        return {"type": "document", "document": doc}
    if kind == "sticker":
        sticker = {"mime_type": "image/webp", "sha256": _sha(rng), "id": media_id(rng)}
        return {"type": "sticker", "sticker": {**sticker, "animated": rng.random() < 0.2}}
    if kind == "location":
        place: dict[str, Any] = {
            "latitude": round(rng.uniform(-60, 70), 6),
            "longitude": round(rng.uniform(-170, 170), 6),
        }
        if rng.random() < 0.5:
            place |= {"name": "Pickup point", "address": "1 Main Street"}
        return {"type": "location", "location": place}
    if kind == "contacts":
        phone = f"+{rng.randrange(10**10, 10**12)}"
        card = {
            "name": {"formatted_name": "Maria Silva", "first_name": "Maria", "last_name": "Silva"},
            "phones": [{"phone": phone, "wa_id": digits(phone), "type": "CELL"}],
        }
        return {"type": "contacts", "contacts": [card]}
    if kind == "interactive":
        if rng.random() < 0.5:
            reply = {"id": f"btn_{rng.randrange(1, 4)}", "title": rng.choice(("Yes", "No"))}
            answer: dict[str, Any] = {"type": "button_reply", "button_reply": reply}
        else:
            row = {"id": f"row_{rng.randrange(1, 10)}", "title": "Standard delivery"}
            answer = {"type": "list_reply", "list_reply": {**row, "description": "3-5 days"}}
        return {"type": "interactive", "interactive": answer, **_context(number, user_id, rng)}
    if kind == "button":
        text = rng.choice(("Stop promotions", "Track order", "Talk to an agent"))
        button = {"text": text, "payload": text.upper().replace(" ", "_")}
        return {"type": "button", "button": button, **_context(number, user_id, rng)}
    if kind == "reaction":
        target = _business_message(number, user_id, rng) or number.new_wamid(user_id)
        return {"type": "reaction", "reaction": {"message_id": target, "emoji": rng.choice(EMOJI)}}
    if kind == "unsupported":
        return {"type": "unsupported", "errors": [webhook_error(131051)]}
    raise ValueError(f"unknown inbound kind {kind!r}; known: {', '.join(KINDS)}")


def _business_message(number: WaNumber, user_id: str, rng: random.Random) -> str | None:
    mine = [m["id"] for m in number.sent[-200:] if m["wa_id"] == user_id]
    return rng.choice(mine) if mine else None


def _context(number: WaNumber, user_id: str, rng: random.Random) -> dict[str, Any]:
    """Replies to buttons refer to the business message that carried them."""
    target = _business_message(number, user_id, rng) or number.new_wamid(user_id)
    return {"context": {"from": digits(number.display_phone_number), "id": target}}


def deliver_inbound(
    state: WhatsAppState,
    number: WaNumber,
    wa_id: str,
    message: Mapping[str, Any],
    *,
    name: str | None = None,
    timestamp: float | None = None,
) -> dict[str, Any]:
    """Complete a user message (from, id, timestamp), open the user's window, queue the
    webhook and return the message as delivered.

    `message` holds at least `type` and its object; `timestamp` (unix seconds, default
    now) is also when the user's 24 h window starts.
    """
    if "type" not in message:
        raise ValueError("an inbound message needs a type")
    user = number.user(digits(wa_id) or wa_id, name)
    at = state.core.clock.time() if timestamp is None else float(timestamp)
    full: dict[str, Any] = {
        "from": user.wa_id,
        "id": number.new_wamid(user.wa_id),
        "timestamp": str(int(at)),
        **copy.deepcopy(dict(message)),
    }
    if message["type"] != "unsupported" and message["type"] not in full:
        raise ValueError(f"a {message['type']} message needs its {message['type']!r} object")
    media = full.get(full["type"]) if full["type"] in MEDIA_TYPES else None
    if isinstance(media, dict) and media.get("id"):
        # Every media id a user sends can be fetched (GET /{media_id}, then its URL).
        held = state.media.hold(
            str(media["id"]),
            number.phone_number_id,
            str(media.get("mime_type") or "application/octet-stream"),
            media.get("filename"),
        )
        media["sha256"] = held.sha256
    user.last_inbound_at = max(user.last_inbound_at or at, at)
    number.inbound.append(full)
    value = {
        "contacts": [{"profile": {"name": user.name}, "wa_id": user.wa_id}],
        "messages": [full],
    }
    queue(state, number, value, ref=full["id"])
    return full
