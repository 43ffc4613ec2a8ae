"""Viber callbacks: the set_webhook check, signed event POSTs, and events after a send.

Every callback body is signed in `X-Viber-Content-Signature` with the hex HMAC-SHA256 of
the raw body keyed by the bot's auth token (no prefix). Events the bot filtered out with
`event_types` are not delivered (message, subscribed, unsubscribed always are).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from switchboard.sandbox.handshakes import handshake
from switchboard.sandbox.viber.errors import ViberError
from switchboard.sandbox.viber.state import CHAT_HOSTNAME, ViberBot, ViberState
from switchboard.sandbox.viber.validate import check_send
from switchboard.sandbox.webhooks import SpacedSteps, WebhookTarget

SIGNATURE_HEADER = "X-Viber-Content-Signature"


def signature(token: str, body: bytes) -> str:
    """The header value Viber sends: hex HMAC-SHA256(auth token, raw body)."""
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def target(state: ViberState, bot: ViberBot) -> WebhookTarget:
    """Where the bot's callbacks go, signed with its current token; an answer to
    `conversation_started` may be the bot's welcome message."""

    def sign(body: bytes) -> Mapping[str, str]:
        return {SIGNATURE_HEADER: signature(bot.token, body)}

    def answered(payload: dict[str, Any], response: httpx.Response) -> None:
        if payload.get("event") == "conversation_started":
            welcome(state, bot, payload, response.content)

    return WebhookTarget(url=bot.webhook.url, sign=sign, answered=answered)


def welcome(state: ViberState, bot: ViberBot, started: dict[str, Any], answer: bytes) -> None:
    """Viber shows the answer to a `conversation_started` callback, when it is a message
    (a send_message body without `receiver`), to that user, subscribed or not: the one
    message a bot may send before the user writes. Anything else in the answer is ignored,
    as Viber ignores it; a message Viber would refuse is kept in `welcome_refused`."""
    try:
        body = json.loads(answer) if answer.strip() else None
    except ValueError:
        return
    if not isinstance(body, dict) or "type" not in body:
        return
    receiver = str((started.get("user") or {}).get("id") or "")
    try:
        kind = check_send({**body, "receiver": receiver}, state.config)[1]
    except ViberError as exc:
        bot.welcome_refused.append(
            {"receiver": receiver, "reason": exc.detail or exc.status_message}
        )
        return
    sent = {
        "message_token": bot.take_token(),
        "receiver": receiver,
        "type": kind,
        "message": body,
        "at": state.core.clock.time(),
        "status": "sent",
        "welcome": True,
    }
    bot.sent.append(sent)


def event(state: ViberState, bot: ViberBot, name: str, **fields: Any) -> dict[str, Any]:
    """A callback body: `event`, `timestamp` (ms), `chat_hostname`, `message_token`, fields."""
    return {
        "event": name,
        "timestamp": int(state.core.clock.time() * 1000),
        "chat_hostname": CHAT_HOSTNAME,
        "message_token": bot.take_token(),
        **fields,
    }


def push(bot: ViberBot, body: dict[str, Any]) -> bool:
    """Queue a callback unless the bot filtered its type out; True when queued."""
    bot.events.append(body)
    if not bot.webhook.wants(str(body["event"])):
        return False
    bot.callbacks.put(body, ref=f"{body['event']}:{body['message_token']}")
    return True


async def check_webhook(state: ViberState, bot: ViberBot, url: str) -> bool:
    """POST the `webhook` event to `url` right away, as set_webhook does; True on a 200.

    The attempt is recorded as a delivery with ref `webhook`.
    """
    body = event(state, bot, "webhook")
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {"content-type": "application/json", SIGNATURE_HEADER: signature(bot.token, raw)}
    timeout = state.config.webhook_check_timeout

    def problem_of(response: httpx.Response) -> str | None:
        ok = response.status_code == 200
        return None if ok else f"{response.status_code} {response.reason_phrase}"

    problem = await handshake(
        state.core,
        provider="viber",
        account=bot.uri,
        url=url,
        ref="webhook",
        request=lambda http: http.post(url, content=raw, headers=headers, timeout=timeout),
        problem_of=problem_of,
    )
    return problem is None


class CallbackEmitter:
    """Queues delivered/seen/failed callbacks of sent messages; owns the delay tasks."""

    def __init__(self, state: ViberState) -> None:
        self.state = state
        self.steps = SpacedSteps()

    def plan(self, bot: ViberBot) -> list[str]:
        """The callbacks one accepted message will produce (seeded per bot)."""
        settings = self.state.config.callbacks
        if settings.failed_rate and bot.rng.random() < settings.failed_rate:
            return ["failed"]
        stages: list[str] = []
        if settings.delivered:
            stages.append("delivered")
            if settings.seen and bot.rng.random() < settings.seen_rate:
                stages.append("seen")
        return stages

    def after_send(self, bot: ViberBot, sent: dict[str, Any]) -> None:
        stages = [functools.partial(self.emit, bot, sent, stage) for stage in self.plan(bot)]
        self.steps.run(stages, self.state.config.callbacks.delay)

    def emit(self, bot: ViberBot, sent: dict[str, Any], stage: str) -> None:
        """Queue one delivered/seen/failed callback for `sent` (keeps its message_token)."""
        sent["status"] = stage
        body: dict[str, Any] = {
            "event": stage,
            "timestamp": int(self.state.core.clock.time() * 1000),
            "chat_hostname": CHAT_HOSTNAME,
            "message_token": sent["message_token"],
            "user_id": sent["receiver"],
        }
        if stage == "failed":
            body["desc"] = "Receiver is not reachable"
        push(bot, body)

    async def aclose(self) -> None:
        await self.steps.aclose()
