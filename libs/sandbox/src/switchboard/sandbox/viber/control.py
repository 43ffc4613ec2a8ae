"""Control endpoints of the Viber fake, under `/_sandbox/viber/`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchboard.sandbox.httpjson import (
    ControlError,
    base64_field,
    listing,
    object_field,
    read_json,
    required,
)
from switchboard.sandbox.routes import RouteTable

if TYPE_CHECKING:
    from switchboard.sandbox.viber.provider import ViberProvider

_PROFILE = ("avatar", "country", "language", "api_version")


def control_routes(provider: ViberProvider) -> RouteTable:
    """Routes to configure bots and users, inject user events, read what was sent and
    called back, serve media (listing and removing bots, limits, settings and traffic are the
    shared routes)."""

    async def add_bot(request: Request) -> Response:
        data = await read_json(request)
        if not data.get("token") or not data.get("name"):
            raise ControlError("token and name are required")
        bot = provider.add_bot(
            str(data["token"]),
            str(data["name"]),
            uri=data.get("uri"),
            avatar=data.get("avatar"),
            category=str(data.get("category") or "Shopping"),
        )
        if data.get("webhook_url"):
            ok = await provider.set_webhook(
                bot,
                str(data["webhook_url"]),
                event_types=data.get("event_types"),
                send_name=bool(data.get("send_name", False)),
                send_photo=bool(data.get("send_photo", False)),
            )
            if not ok:
                raise ControlError("the webhook did not answer the webhook event with 200")
        return JSONResponse(bot.summary(), status_code=201)

    async def get_bot(request: Request) -> Response:
        bot = provider.find(request.path_params["bot"])
        users = [u.summary() for u in bot.users.values()]
        return JSONResponse({**bot.summary(), "account": bot.account_info(), "users_detail": users})

    async def list_users(request: Request) -> Response:
        return JSONResponse(
            {
                "users": [
                    u.summary() for u in provider.find(request.path_params["bot"]).users.values()
                ]
            }
        )

    async def add_user(request: Request) -> Response:
        bot = provider.find(request.path_params["bot"])
        data = await read_json(request)
        user_id = required(data, "id")
        profile = {k: data[k] for k in _PROFILE if k in data}
        user = provider.add_user(
            bot,
            user_id,
            data.get("name"),
            subscribed=bool(data.get("subscribed", True)),
            **profile,
        )
        return JSONResponse(user.summary(), status_code=201)

    async def inject(request: Request) -> Response:
        bot = provider.find(request.path_params["bot"])
        data = await read_json(request)
        user_id = required(data, "user_id", "user")
        message = object_field(data, "message")
        body = await provider.inject_event(
            bot,
            user_id,
            str(data.get("event", "message")),
            message=message,
            kind=str(data.get("kind", "text")),
            name=data.get("name"),
            context=data.get("context"),
        )
        return JSONResponse({"queued": bot.webhook.wants(body["event"]), "event": body}, 202)

    async def sent(request: Request) -> Response:
        found = provider.sent_messages(
            provider.find(request.path_params["bot"]), request.query_params.get("receiver")
        )
        return listing("messages", found)

    async def callbacks(request: Request) -> Response:
        found = provider.callbacks(
            provider.find(request.path_params["bot"]), request.query_params.get("event")
        )
        return listing("callbacks", found)

    async def add_media(request: Request) -> Response:
        """Put a file on the fake media CDN (bytes as base64); the answered `url` goes in an
        injected message's `media`, and a GET of it returns the same bytes."""
        data = await read_json(request)
        content = base64_field(data)
        name = str(data.get("file_name") or "photo.jpg")
        if "/" in name or not name.strip("."):
            raise ControlError("file_name must be a plain file name")
        media = provider.state.add_media(content, name, str(data.get("mime_type") or "image/jpeg"))
        origin = f"{request.url.scheme}://{request.url.netloc}"
        base = str(data.get("base_url") or origin + provider.prefix).rstrip("/")
        return JSONResponse({"url": base + media.path, "size": len(content)}, status_code=201)

    return [
        ("/media", add_media, ["POST"]),
        ("/bots", add_bot, ["POST"]),
        ("/bots/{bot}", get_bot, ["GET"]),
        ("/bots/{bot}/users", list_users, ["GET"]),
        ("/bots/{bot}/users", add_user, ["POST"]),
        ("/bots/{bot}/events", inject, ["POST"]),
        ("/bots/{bot}/messages", sent, ["GET"]),
        ("/bots/{bot}/callbacks", callbacks, ["GET"]),
    ]
