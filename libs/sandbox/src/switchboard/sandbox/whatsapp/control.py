"""Control endpoints of the WhatsApp fake, under `/_sandbox/whatsapp/`."""

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
    from switchboard.sandbox.whatsapp.provider import WhatsAppProvider

_NUMBER_FIELDS = ("display_phone_number", "waba_id", "app_secret", "verify_token", "verified_name")


def control_routes(provider: WhatsAppProvider) -> RouteTable:
    """Routes to configure numbers, webhooks and users, inject messages and media, read what
    was sent (listing and removing numbers, limits, settings and traffic are the shared
    messaging routes)."""

    async def add_number(request: Request) -> Response:
        data = await read_json(request)
        if not data.get("phone_number_id") or not data.get("token"):
            raise ControlError("phone_number_id and token are required")
        extra = {k: str(data[k]) for k in _NUMBER_FIELDS if data.get(k)}
        number = provider.add_number(str(data["phone_number_id"]), str(data["token"]), **extra)
        if data.get("webhook_url"):
            await provider.set_webhook(number, str(data["webhook_url"]))
        return JSONResponse(number.summary(), status_code=201)

    async def get_number(request: Request) -> Response:
        number = provider.find(request.path_params["number"])
        users = [u.summary() for u in number.users.values()]
        return JSONResponse({**number.summary(), "users_detail": users})

    async def set_webhook(request: Request) -> Response:
        number = provider.find(request.path_params["number"])
        data = await read_json(request)
        if data.get("verify_token"):
            number.verify_token = str(data["verify_token"])
        if data.get("app_secret"):
            number.app_secret = str(data["app_secret"])
        subscription = await provider.set_webhook(number, str(data.get("url") or ""))
        return JSONResponse(subscription.to_json())

    async def add_user(request: Request) -> Response:
        number = provider.find(request.path_params["number"])
        data = await read_json(request)
        wa_id = required(data, "wa_id")
        undeliverable, at = data.get("undeliverable"), data.get("last_inbound_at")
        user = provider.add_user(
            number,
            wa_id,
            data.get("name"),
            undeliverable=None if undeliverable is None else bool(undeliverable),
            last_inbound_at=None if at is None else float(at),
        )
        return JSONResponse(user.summary(), status_code=201)

    async def inject(request: Request) -> Response:
        number = provider.find(request.path_params["number"])
        data = await read_json(request)
        sender = required(data, "from", "wa_id")  # the user's wa_id
        message = object_field(data, "message")
        full = await provider.inject_message(
            number,
            sender,
            message,
            kind=str(data.get("kind", "text")),
            name=data.get("name"),
            timestamp=data.get("timestamp"),
        )
        return JSONResponse({"queued": True, "message": full}, status_code=202)

    async def add_media(request: Request) -> Response:
        """Hold a file as a customer's media (bytes as base64): its id goes in an
        injected message (`image.id`, ...), and the Cloud API serves its bytes."""
        number = provider.find(request.path_params["number"])
        data = await read_json(request)
        content = base64_field(data)
        mime = str(data.get("mime_type") or "image/jpeg")
        media = provider.state.media.add(
            number.phone_number_id, content, mime, data.get("filename")
        )
        return JSONResponse(
            {"id": media.id, "sha256": media.sha256, "file_size": len(content)}, status_code=201
        )

    async def sent(request: Request) -> Response:
        found = provider.sent_messages(
            provider.find(request.path_params["number"]), request.query_params.get("to")
        )
        return listing("messages", found)

    async def inbound(request: Request) -> Response:
        found = provider.inbound_messages(provider.find(request.path_params["number"]))
        return listing("messages", found)

    async def statuses(request: Request) -> Response:
        found = provider.find(request.path_params["number"]).statuses
        return listing("statuses", found)

    return [
        ("/numbers", add_number, ["POST"]),
        ("/numbers/{number}", get_number, ["GET"]),
        ("/numbers/{number}/webhook", set_webhook, ["PUT", "POST"]),
        ("/numbers/{number}/users", add_user, ["POST"]),
        ("/numbers/{number}/inbound", inject, ["POST"]),
        ("/numbers/{number}/inbound", inbound, ["GET"]),
        ("/numbers/{number}/messages", sent, ["GET"]),
        ("/numbers/{number}/media", add_media, ["POST"]),
        ("/numbers/{number}/statuses", statuses, ["GET"]),
    ]
