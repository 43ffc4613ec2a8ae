"""sendMessage, the single-media send methods and sendMediaGroup."""

from __future__ import annotations

import random
from typing import Any

from switchboard.sandbox.telegram.errors import (
    CAPTION_TOO_LONG,
    TEXT_TOO_LONG,
    bad_request,
)
from switchboard.sandbox.telegram.limits import take_send_slot
from switchboard.sandbox.telegram.messages import (
    check_parse_mode,
    counted,
    message_text,
    new_message,
    reply_markup,
    reply_target,
)
from switchboard.sandbox.telegram.methods.base import Call, ensure_reachable, method
from switchboard.sandbox.telegram.methods.media import media_object

GROUPABLE = ("photo", "video", "audio", "document")
MEDIA_GROUP_SIZE = "media group must contain 2 to 10 items"
MEDIA_GROUP_TOO_BIG = "Too much messages to send as an album"


@method("sendMessage")
async def send_message(call: Call) -> Any:
    params = call.params
    if not params.has("chat_id"):
        raise bad_request("chat_id is empty")
    text, markup = message_text(params)
    chat = call.chat()
    ensure_reachable(chat)
    if counted(text, params.text("parse_mode")) > call.state.config.max_text:
        raise bad_request(TEXT_TOO_LONG)
    reply_to = reply_target(params, chat)
    take_send_slot(call.state, call.bot, chat, call.now, params.boolean("allow_paid_broadcast"))
    body: dict[str, Any] = {"text": text}
    if (entities := params.json("entities")) and isinstance(entities, list):
        body["entities"] = entities
    return new_message(
        call.bot, chat, call.date, body, params=params, markup=markup, reply_to=reply_to
    )


def _caption(call: Call, value: str | None, parse_mode: str | None = None) -> dict[str, Any]:
    """A caption as stored, refused over the limit counted after entities parsing."""
    if value is None or value == "":
        return {}
    if counted(value, parse_mode) > call.state.config.max_caption:
        raise bad_request(CAPTION_TOO_LONG)
    return {"caption": value}


def _media_sender(kind: str) -> None:
    """Register send<Kind>: the same flow for every single-media method."""

    async def send(call: Call) -> Any:
        params = call.params
        if not params.has("chat_id"):
            raise bad_request("chat_id is empty")
        check_parse_mode(params)
        markup = reply_markup(params)
        chat = call.chat()
        ensure_reachable(chat)
        caption = (
            {} if kind == "sticker"
            else _caption(call, params.text("caption"), params.text("parse_mode"))
        )  # fmt: skip
        extra: dict[str, Any] = {}
        if kind == "audio":
            extra = {k: v for k in ("title", "performer") if (v := params.text(k))}
        if kind == "sticker" and (emoji := params.text("emoji")):
            extra["emoji"] = emoji
        content = media_object(call, kind, params.media(kind), extra)
        reply_to = reply_target(params, chat)
        take_send_slot(call.state, call.bot, chat, call.now, params.boolean("allow_paid_broadcast"))
        body: dict[str, Any] = {kind: content, **caption}
        if kind == "animation":
            body["document"] = dict(content)
        return new_message(
            call.bot, chat, call.date, body, params=params, markup=markup, reply_to=reply_to
        )

    method(f"send{kind.capitalize()}")(send)


for _kind in ("photo", "video", "audio", "voice", "document", "animation", "sticker"):
    _media_sender(_kind)


@method("sendMediaGroup")
async def send_media_group(call: Call) -> Any:
    params = call.params
    if not params.has("chat_id"):
        raise bad_request("chat_id is empty")
    items = params.json("media", "can't parse media JSON object")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise bad_request("can't parse media JSON object")
    if len(items) > 10:
        raise bad_request(MEDIA_GROUP_TOO_BIG)
    if len(items) < 2:
        raise bad_request(MEDIA_GROUP_SIZE)
    kinds = [str(item.get("type", "")) for item in items]
    for kind in kinds:
        if kind not in GROUPABLE:
            raise bad_request(f'unsupported media type "{kind}" in the media group')
    for lonely in ("document", "audio"):
        if lonely in kinds and any(kind != lonely for kind in kinds):
            raise bad_request(f"{lonely} can't be mixed with other media types")
    chat = call.chat()
    ensure_reachable(chat)
    bodies: list[dict[str, Any]] = []
    for item, kind in zip(items, kinds, strict=True):
        caption = item.get("caption")
        body = {kind: media_object(call, kind, params.resolve_media(_text(item.get("media"))))}
        mode = item.get("parse_mode")
        body.update(_caption(call, None if caption is None else str(caption), mode and str(mode)))
        bodies.append(body)
    reply_to = reply_target(params, chat)
    take_send_slot(call.state, call.bot, chat, call.now, params.boolean("allow_paid_broadcast"))
    group_id = str(
        random.Random(f"{call.bot.id}:{chat.id}:{chat.next_message_id}").randrange(10**17, 10**18)
    )
    return [
        new_message(
            call.bot,
            chat,
            call.date,
            body,
            params=params,
            reply_to=reply_to,
            media_group_id=group_id,
        )
        for body in bodies
    ]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@method("sendLocation")
async def send_location(call: Call) -> Any:
    """A point on the map: latitude in [-90, 90], longitude in [-180, 180] (Bot API rules)."""
    params = call.params
    if not params.has("chat_id"):
        raise bad_request("chat_id is empty")
    latitude, longitude = params.number("latitude"), params.number("longitude")
    if latitude is None or longitude is None:
        raise bad_request("latitude and longitude are required")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise bad_request("wrong latitude or longitude")
    markup = reply_markup(params)
    chat = call.chat()
    ensure_reachable(chat)
    reply_to = reply_target(params, chat)
    take_send_slot(call.state, call.bot, chat, call.now, params.boolean("allow_paid_broadcast"))
    body: dict[str, Any] = {"location": {"latitude": latitude, "longitude": longitude}}
    return new_message(
        call.bot, chat, call.date, body, params=params, markup=markup, reply_to=reply_to
    )
