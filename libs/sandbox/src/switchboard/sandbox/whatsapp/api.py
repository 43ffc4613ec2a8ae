"""HTTP endpoints of the Cloud API fake: `POST /{version}/{phone_number_id}/messages` (send
or mark as read), `GET /{version}/{phone_number_id}` (number info, or a media object when
the id is a media id), `POST /{version}/{phone_number_id}/media` (upload) and
`GET /media-download/{media_id}` (the bytes behind a media object's URL)."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from switchboard.sandbox.graph import GraphError
from switchboard.sandbox.provider import route_path
from switchboard.sandbox.recorder import RequestNote, note_of
from switchboard.sandbox.whatsapp.errors import (
    INVALID_PARAMETER,
    REENGAGEMENT,
    error_response,
    invalid,
    invalid_token,
    required,
    token_missing,
    unknown_path,
    unsupported_request,
    whatsapp_error,
)
from switchboard.sandbox.whatsapp.limits import take_send_slot
from switchboard.sandbox.whatsapp.media import DOCUMENT_LIMIT, WaMedia, limit_for
from switchboard.sandbox.whatsapp.state import WaNumber, WhatsAppState
from switchboard.sandbox.whatsapp.statuses import StatusEmitter
from switchboard.sandbox.whatsapp.validate import (
    BSUID,
    SendRequest,
    check_mark_read,
    check_send,
)

_PATH = re.compile(r"^/([^/]+)/(\d{1,20})(/messages)?/?$")


def classify(scope: Scope) -> tuple[str | None, str | None]:
    """(phone_number_id, "messages" | "phone_number") read from the raw path."""
    match = _PATH.match(route_path(scope))
    if not match:
        return None, None
    return match.group(2), "messages" if match.group(3) else "phone_number"


def bearer(request: Request) -> str | None:
    """The access token: `Authorization: Bearer ...` or the `access_token` query parameter."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return request.query_params.get("access_token") or None


async def read_body(request: Request) -> dict[str, Any]:
    """A JSON object body, or a form whose JSON-looking values are decoded (Graph takes both)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        out: dict[str, Any] = {}
        for key, value in form.items():
            text = value if isinstance(value, str) else ""
            try:
                out[key] = json.loads(text) if text[:1] in ("{", "[") else text
            except ValueError:
                out[key] = text
        return out
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise GraphError(INVALID_PARAMETER, "(#100) The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise GraphError(INVALID_PARAMETER, "(#100) The request body must be a JSON object.")
    return data


def params_summary(send: SendRequest) -> dict[str, Any]:
    """What the recorder keeps of a send."""
    out: dict[str, Any] = {"to": send.to, "type": send.type}
    if send.type == "template":
        out["template"] = send.content.get("name")
    elif send.type == "text":
        out["text_length"] = len(str(send.content.get("body", "")))
    if send.reply_to:
        out["reply_to"] = send.reply_to
    return out


class WhatsAppApi:
    """Dispatches Cloud API calls and shapes their answers."""

    def __init__(self, state: WhatsAppState, emitter: StatusEmitter) -> None:
        self.state = state
        self.emitter = emitter

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/media-download/{media_id}", self.download, methods=["GET"]),
            Route("/{version}/{phone_number_id}/messages", self.messages, methods=["POST"]),
            Route("/{version}/{phone_number_id}/media", self.upload, methods=["POST"]),
            Route("/{version}/{phone_number_id}", self.phone_number, methods=["GET"]),
        ]

    def authorize(self, request: Request) -> WaNumber:
        """The number of the path, if the token may use it (190, 104 or 100/33 otherwise)."""
        version = str(request.path_params["version"])
        if not re.fullmatch(self.state.config.graph_version_pattern, version):
            raise unknown_path(route_path(request.scope))
        token = bearer(request)
        if token is None:
            raise token_missing()
        object_id = str(request.path_params["phone_number_id"])
        number = self.state.numbers.get(object_id)
        if number is not None and number.token == token:
            return number
        if self.state.by_token(token):
            raise unsupported_request(object_id, request.method.lower())
        raise invalid_token()

    def media_owner(self, request: Request, media_id: str) -> WaMedia:
        """The media `media_id` if the bearer token is its number's (else as Meta: an
        unknown object for another number's token, 190 for an unknown token)."""
        token = bearer(request)
        if token is None:
            raise token_missing()
        media = self.state.media.get(media_id)
        if media is not None:
            number = self.state.numbers.get(media.phone_number_id)
            if number is not None and number.token == token:
                return media
        if self.state.by_token(token):
            raise unsupported_request(media_id, request.method.lower())
        raise invalid_token()

    async def upload(self, request: Request) -> Response:
        """Store a multipart `file` for the number; answer its media id."""
        note = note_of(request.scope, "whatsapp")
        note.method = "media_upload"
        try:
            number = self.authorize(request)
            form = await request.form(max_part_size=DOCUMENT_LIMIT + 1)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise required("file")
            if form.get("messaging_product") != "whatsapp":
                raise invalid("messaging_product", "must be whatsapp")
            data = await upload.read()
            mime = str(form.get("type") or upload.content_type or "application/octet-stream")
            if len(data) > limit_for(mime):
                raise invalid("file", f"file size {len(data)} is over the {mime} limit")
            media = self.state.media.add(number.phone_number_id, data, mime, upload.filename)
        except GraphError as error:
            note.fail(error.code, error.message)
            return error_response(error)
        note.succeed()
        return JSONResponse({"id": media.id})

    async def download(self, request: Request) -> Response:
        """The bytes of a media object's URL (the same bearer token is required)."""
        note = note_of(request.scope, "whatsapp")
        note.method = "media_download"
        try:
            media = self.media_owner(request, str(request.path_params["media_id"]))
        except GraphError as error:
            note.fail(error.code, error.message)
            return error_response(error)
        note.succeed()
        return Response(media.data, media_type=media.mime_type)

    async def phone_number(self, request: Request) -> Response:
        note = note_of(request.scope, "whatsapp")
        object_id = str(request.path_params["phone_number_id"])
        if self.state.media.get(object_id) is not None:
            note.method = "media"
            try:
                media = self.media_owner(request, object_id)
            except GraphError as error:
                note.fail(error.code, error.message)
                return error_response(error)
            note.succeed()
            mount = str(request.url).split("?")[0][: -len(route_path(request.scope))]
            return JSONResponse(media.info(f"{mount}/media-download/{media.id}"))
        try:
            number = self.authorize(request)
        except GraphError as error:
            note.fail(error.code, error.message)
            return error_response(error)
        note.succeed()
        return JSONResponse(number.info())

    async def messages(self, request: Request) -> Response:
        note = note_of(request.scope, "whatsapp")
        try:
            number = self.authorize(request)
            body = await read_body(request)
            if "status" in body and "to" not in body:
                return self._mark_read(note, number, body)
            send = check_send(body, self.state.config)
            note.method, note.chat = "messages", send.wa_id
            note.params = params_summary(send)
            answer = self._send(note, number, send, body)
        except GraphError as error:
            note.fail(error.code, error.message, error.retry_after)
            return error_response(error)
        note.succeed()
        return JSONResponse(answer)

    def _send(
        self, note: RequestNote, number: WaNumber, send: SendRequest, body: dict[str, Any]
    ) -> dict[str, Any]:
        clock = self.state.core.clock
        user = number.user(send.wa_id)
        window_open = user.last_inbound_at is not None and (
            clock.time() - user.last_inbound_at < self.state.config.window_seconds
        )
        closed = send.free_form and not window_open
        if closed and self.state.config.window_errors == "sync":
            raise whatsapp_error(REENGAGEMENT)  # refused before the limits: nothing counted
        now = clock.monotonic()
        note.accepted_at = now
        take_send_slot(self.state, number, send.wa_id, now)
        wamid = number.new_wamid(send.wa_id)
        sent = {
            "id": wamid,
            "to": send.to,
            "wa_id": send.wa_id,
            "type": send.type,
            "message": body,
            "reply_to": send.reply_to,
            "at": clock.time(),
            "status": "accepted",
            "category": "service" if send.free_form else "utility",
            "conversation_id": "".join(number.rng.choice("0123456789abcdef") for _ in range(32)),
            "window_closed": closed,
        }
        number.sent.append(sent)
        self.emitter.after_send(number, sent)
        message: dict[str, Any] = {"id": wamid}
        if send.type == "template":
            message["message_status"] = "accepted"
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": send.to, **_identity(send.wa_id)}],
            "messages": [message],
        }

    def _mark_read(self, note: RequestNote, number: WaNumber, body: dict[str, Any]) -> Response:
        """A read receipt for a user's message (`status: read`)."""
        message_id = check_mark_read(body)
        note.method = "mark_read"
        note.params = {"message_id": message_id}
        found = next((m for m in number.inbound if m["id"] == message_id), None)
        if found is not None:
            found["read"] = True
            note.chat = str(found["from"])
        note.succeed()
        return JSONResponse({"success": True})


def _identity(wa_id: str) -> dict[str, str]:
    """How Meta names a recipient: ``wa_id`` for a phone, ``user_id`` for a BSUID."""
    return {"user_id": wa_id} if BSUID.match(wa_id) else {"wa_id": wa_id}
