"""HTTP endpoints of the Viber fake: `POST /pa/<method>` with `X-Viber-Auth-Token`.

Methods: set_webhook, send_message, get_account_info, get_user_details. Every Viber-level
failure is HTTP 200 with a non-zero `status`, as the real API answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from switchboard.sandbox.provider import route_path
from switchboard.sandbox.recorder import RequestNote, note_of
from switchboard.sandbox.viber.callbacks import CallbackEmitter, check_webhook, target
from switchboard.sandbox.viber.errors import (
    INVALID_AUTH_TOKEN,
    INVALID_URL,
    RECEIVER_NOT_REGISTERED,
    TOO_MANY_REQUESTS,
    WEBHOOK_NOT_SET,
    ViberError,
    bad_data,
    http_error_response,
    missing_data,
    ok_response,
    status_response,
)
from switchboard.sandbox.viber.state import (
    CHAT_HOSTNAME,
    EVENT_TYPES,
    ViberBot,
    ViberState,
    ViberWebhook,
)
from switchboard.sandbox.viber.validate import check_send

TOKEN_HEADER = "X-Viber-Auth-Token"  # noqa: S105  (a header name)
_PATH = re.compile(r"^/pa/([A-Za-z_]+)/?$")
Handler = Callable[[ViberBot, dict[str, Any], RequestNote], Awaitable[Response]]


def unreplied_key(bot: ViberBot, user_id: str) -> str:
    """Limiter key of messages to one user since their last message (`|` ends the id, so
    resetting one user's prefix never touches another's)."""
    return f"viber:{bot.uri}:unreplied:{user_id}|"


class ViberApi:
    """Dispatches Viber calls to their handlers and shapes the answers."""

    def __init__(self, state: ViberState, emitter: CallbackEmitter) -> None:
        self.state = state
        self.emitter = emitter
        self.handlers: dict[str, Handler] = {
            "set_webhook": self.set_webhook,
            "send_message": self.send_message,
            "get_account_info": self.get_account_info,
            "get_user_details": self.get_user_details,
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/pa/{method}", self.call, methods=["POST"]),
            Route("/media/{media_id}/{file_name}", self.media, methods=["GET"]),
        ]

    async def media(self, request: Request) -> Response:
        """A file a customer sent, from the fake media CDN (public URLs, no token)."""
        note = note_of(request.scope, "viber")
        note.method = "media_download"
        found = self.state.media.get(str(request.path_params["media_id"]))
        if found is None or found.file_name != request.path_params["file_name"]:
            note.fail(404, "not found")
            return Response(b"not found", status_code=404, media_type="text/plain")
        note.succeed()
        return Response(found.data, media_type=found.mime_type)

    def classify(self, scope: Scope) -> tuple[str | None, str | None]:
        """(bot uri from the token header, method) read from the raw request."""
        match = _PATH.match(route_path(scope))
        if not match:
            return None, None
        token = Headers(scope=scope).get(TOKEN_HEADER)
        bot = self.state.by_token(token) if token else None
        return (bot.uri if bot else None), match.group(1)

    async def call(self, request: Request) -> Response:
        note = note_of(request.scope, "viber")
        handler = self.handlers.get(str(request.path_params["method"]))
        if handler is None:
            note.fail(404, "Not Found")
            return http_error_response(404, "Not Found")
        try:
            bot, data = await self._authorize(request)
            note.account = bot.uri
            response = await handler(bot, data, note)
        except ViberError as error:
            note.fail(error.status, error.detail or error.status_message, note.retry_after)
            return status_response(error)
        note.succeed()
        return response

    async def _authorize(self, request: Request) -> tuple[ViberBot, dict[str, Any]]:
        """The bot of the auth token (header, or `auth_token` in the body) and the body."""
        raw = await request.body()
        limit = self.state.config.max_request_bytes
        data: Any = None
        if len(raw) <= limit:
            try:
                data = json.loads(raw) if raw.strip() else {}
            except ValueError:
                data = None
        token = request.headers.get(TOKEN_HEADER)
        if token is None and isinstance(data, dict):
            token = data.get("auth_token")
        bot = self.state.by_token(str(token)) if token else None
        if bot is None:
            raise ViberError(INVALID_AUTH_TOKEN)
        if len(raw) > limit:
            raise bad_data(f"request body is {len(raw)} bytes, more than {limit}")
        if not isinstance(data, dict):
            raise bad_data("body is not a JSON object")
        return bot, data

    async def set_webhook(self, bot: ViberBot, data: dict[str, Any], note: RequestNote) -> Response:
        if "url" not in data:
            raise missing_data("url is required")
        url = str(data["url"] or "")
        note.params = {"url": url}
        if not url:
            bot.webhook = ViberWebhook()
            bot.callbacks.set_target(None)
            return ok_response(chat_hostname=CHAT_HOSTNAME)
        parts = urlsplit(url)
        schemes = ("https",) if self.state.config.require_https_webhook else ("http", "https")
        if parts.scheme not in schemes or not parts.hostname:
            raise ViberError(INVALID_URL, "the webhook must be an https URL")
        events = data.get("event_types")
        if events is None:
            events = list(EVENT_TYPES)
        if not isinstance(events, list) or any(e not in EVENT_TYPES for e in events):
            raise bad_data(f"event_types must be a list of {', '.join(EVENT_TYPES)}")
        webhook = ViberWebhook(
            url=url,
            event_types=[str(e) for e in events],
            send_name=bool(data.get("send_name", False)),
            send_photo=bool(data.get("send_photo", False)),
        )
        if not await check_webhook(self.state, bot, url):
            raise ViberError(INVALID_URL, "the webhook did not answer the webhook event with 200")
        bot.webhook = webhook
        bot.callbacks.set_target(target(self.state, bot))
        return ok_response(chat_hostname=CHAT_HOSTNAME, event_types=list(webhook.event_types))

    async def send_message(
        self, bot: ViberBot, data: dict[str, Any], note: RequestNote
    ) -> Response:
        receiver, kind = check_send(data, self.state.config)
        note.chat = receiver
        note.params = {"receiver": receiver, "type": kind}
        config = self.state.config
        if config.require_webhook and not bot.webhook.url:
            raise ViberError(WEBHOOK_NOT_SET, "set a webhook before sending")
        user = bot.users.get(receiver)
        if user is None:
            if config.receivers == "strict":
                raise ViberError(RECEIVER_NOT_REGISTERED, f"unknown receiver {receiver}")
            user = bot.user(receiver)
        if not user.subscribed:
            raise ViberError(config.unsubscribed_status, f"{receiver} is not subscribed")
        now = self.state.core.clock.monotonic()
        note.accepted_at = now
        rule = config.limits.unreplied
        if config.limits.enabled and rule is not None:
            decision = self.state.limiter.acquire([(unreplied_key(bot, receiver), rule)], now)
            if not decision.allowed:
                note.retry_after = decision.retry_after
                raise ViberError(TOO_MANY_REQUESTS, "100 messages without a reply from the user")
        token = bot.take_token()
        sent = {
            "message_token": token,
            "receiver": receiver,
            "type": kind,
            "message": data,
            "at": self.state.core.clock.time(),
            "status": "sent",
        }
        bot.sent.append(sent)
        self.emitter.after_send(bot, sent)
        return ok_response(message_token=token, chat_hostname=CHAT_HOSTNAME)

    async def get_account_info(
        self, bot: ViberBot, data: dict[str, Any], note: RequestNote
    ) -> Response:
        return ok_response(**bot.account_info())

    async def get_user_details(
        self, bot: ViberBot, data: dict[str, Any], note: RequestNote
    ) -> Response:
        user_id = data.get("id")
        if not user_id:
            raise missing_data("id is required")
        user = bot.users.get(str(user_id))
        if user is None:
            raise ViberError(RECEIVER_NOT_REGISTERED, f"unknown user {user_id}")
        note.chat = user.id
        details = {
            **user.to_json(),
            "primary_device_os": "Android 14",
            "viber_version": "24.1.0",
            "mcc": 255,
            "mnc": 1,
            "device_type": "Pixel 8",
        }
        return JSONResponse(
            {
                "status": 0,
                "status_message": "ok",
                "message_token": bot.take_token(),
                "user": details,
            }
        )
