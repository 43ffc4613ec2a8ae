"""Event ids. Events born from a provider payload get a deterministic id from the provider's
own identity, so a retried webhook or a replayed import can never create a second event."""

from __future__ import annotations

import hashlib
import uuid

from switchboard.events.subjects import token


def new_id() -> str:
    """A random id for events with no natural identity (commands from people, timers)."""
    return uuid.uuid4().hex


def telegram_update(bot: str, update_id: int) -> str:
    """``tg:<bot>:<update_id>``: Telegram's update ids are unique and increasing per bot."""
    return f"tg:{token(bot)}:{update_id}"


def whatsapp_message(wamid: str) -> str:
    """``wa:<message id>``: WhatsApp's ``wamid`` is globally unique."""
    return f"wa:{wamid}"


def whatsapp_status(wamid: str, status: str) -> str:
    """``wa:<message id>:<status>``: one receipt per message and status."""
    return f"wa:{wamid}:{status}"


def viber_event(account: str, event: str, message_token: int | str, user: str = "") -> str:
    """``vb:<account>:<event>:<message_token>[:<user>]``."""
    suffix = f":{token(user)}" if user else ""
    return f"vb:{token(account)}:{event}:{message_token}{suffix}"


def generic_webhook(source: str, webhook_id: str) -> str:
    """``wh:<source>:<webhook-id>`` from the Standard Webhooks ``webhook-id``."""
    return f"wh:{token(source)}:{token(webhook_id)}"


def mtproto_message(session: str, chat: int | str, message_id: int | str) -> str:
    """``mt:<session>:<chat>:<message id>``: live and backfilled copies share it."""
    return f"mt:{token(session)}:{chat}:{message_id}"


def derived(parent_id: str, *parts: str | int) -> str:
    """An id derived from another event's id (e.g. a ``conv`` event from its ``raw`` payload).

    Deterministic, so reprocessing the parent yields the same child ids.
    """
    return "/".join([parent_id, *(str(p) for p in parts)])


def stable_hash(*parts: str) -> str:
    """A short stable hash, for ids that must not reveal their inputs."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
