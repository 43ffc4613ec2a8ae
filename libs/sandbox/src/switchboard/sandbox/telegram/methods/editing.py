"""editMessageText, editMessageCaption, editMessageReplyMarkup, deleteMessage and
answerCallbackQuery."""

from __future__ import annotations

import copy
from typing import Any

from switchboard.sandbox.telegram.errors import TEXT_TOO_LONG, bad_request
from switchboard.sandbox.telegram.messages import (
    check_parse_mode,
    message_text,
    reply_markup,
    sent_by,
)
from switchboard.sandbox.telegram.methods.base import Call, ensure_reachable, method

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"


@method("editMessageText")
async def edit_message_text(call: Call) -> Any:
    params = call.params
    if params.has("inline_message_id") and not params.has("chat_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    text, markup = message_text(params)
    message = _editable(call)
    if "text" not in message:
        raise bad_request("there is no text in the message to edit")
    if len(text) > call.state.config.max_text:
        raise bad_request(TEXT_TOO_LONG)
    new_markup = (
        {"inline_keyboard": markup["inline_keyboard"]}
        if markup and ("inline_keyboard" in markup)
        else None
    )
    if message["text"] == text and message.get("reply_markup") == new_markup:
        raise bad_request(NOT_MODIFIED)
    message["text"] = text
    message["edit_date"] = call.date
    if new_markup is None:
        message.pop("reply_markup", None)
    else:
        message["reply_markup"] = new_markup
    return copy.deepcopy(message)


def _editable(call: Call) -> dict[str, Any]:
    """The bot's own message that ``chat_id`` / ``message_id`` name (Telegram's errors)."""
    params = call.params
    if params.has("inline_message_id") and not params.has("chat_id"):
        raise bad_request("MESSAGE_ID_INVALID")
    chat = call.chat()
    ensure_reachable(chat)
    message_id = params.integer("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    message = chat.messages.get(message_id)
    if message is None:
        raise bad_request("message to edit not found")
    if not sent_by(call.bot, message):
        raise bad_request("message can't be edited")
    return message


def _inline(call: Call) -> dict[str, Any] | None:
    markup = reply_markup(call.params)
    if markup and "inline_keyboard" in markup and markup["inline_keyboard"]:
        return {"inline_keyboard": markup["inline_keyboard"]}
    return None


def _apply_markup(message: dict[str, Any], markup: dict[str, Any] | None) -> None:
    if markup is None:
        message.pop("reply_markup", None)
    else:
        message["reply_markup"] = markup


@method("editMessageCaption")
async def edit_message_caption(call: Call) -> Any:
    message = _editable(call)
    check_parse_mode(call.params)
    if "text" in message:
        raise bad_request("there is no caption in the message to edit")
    caption = call.params.text("caption") or ""
    if len(caption) > call.state.config.max_caption:
        raise bad_request("message caption is too long")
    markup = _inline(call)
    if message.get("caption", "") == caption and message.get("reply_markup") == markup:
        raise bad_request(NOT_MODIFIED)
    if caption:
        message["caption"] = caption
    else:
        message.pop("caption", None)
    message["edit_date"] = call.date
    _apply_markup(message, markup)
    return copy.deepcopy(message)


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(call: Call) -> Any:
    message = _editable(call)
    markup = _inline(call)
    if message.get("reply_markup") == markup:
        raise bad_request(NOT_MODIFIED)
    message["edit_date"] = call.date
    _apply_markup(message, markup)
    return copy.deepcopy(message)


@method("deleteMessage")
async def delete_message(call: Call) -> Any:
    chat = call.chat()
    message_id = call.params.integer("message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    if chat.messages.pop(message_id, None) is None:
        raise bad_request("message to delete not found")
    return True


@method("answerCallbackQuery")
async def answer_callback_query(call: Call) -> Any:
    query_id = call.params.required("callback_query_id", said="query_id")
    answered = call.bot.callbacks.get(query_id)
    if answered is None or answered:
        raise bad_request(QUERY_INVALID)
    text = call.params.text("text") or ""
    if len(text) > call.state.config.max_callback_text:
        raise bad_request("MESSAGE_TOO_LONG")
    call.bot.callbacks[query_id] = True
    return True
