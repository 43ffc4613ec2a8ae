"""Message objects the fake returns and remembers, with the reply and markup rules."""

from __future__ import annotations

import copy
from typing import Any

from telethon.extensions import html

from switchboard.sandbox.telegram.errors import TEXT_EMPTY, bad_request
from switchboard.sandbox.telegram.params import Params
from switchboard.sandbox.telegram.state import TgBot, TgChat

PARSE_MODES = frozenset({"markdown", "markdownv2", "html"})
CALLBACK_DATA_BYTES = 64  # "1-64 bytes" (the Bot API's InlineKeyboardButton)
_MARKUP_KINDS = ("inline_keyboard", "keyboard", "remove_keyboard", "force_reply")


def message_text(params: Params) -> tuple[str, dict[str, Any] | None]:
    """The text of a message being sent or edited (refused when blank), its parse mode
    checked, and its reply markup."""
    text = params.text("text")
    if text is None or not text.strip():
        raise bad_request(TEXT_EMPTY)
    check_parse_mode(params)
    return text, reply_markup(params)


def counted(text: str, parse_mode: str | None) -> int:
    """The characters Telegram counts against its limits: "after entities parsing", so of
    HTML only what shows (Telethon's parser, as a client sees it); other modes as written."""
    if parse_mode and parse_mode.lower() == "html":
        return len(html.parse(text)[0])
    return len(text)


def check_parse_mode(params: Params, name: str = "parse_mode") -> None:
    mode = params.text(name)
    if mode and mode.lower() not in PARSE_MODES:
        raise bad_request("unsupported parse_mode")


def reply_markup(params: Params) -> dict[str, Any] | None:
    """The validated reply_markup, decoded from JSON text when sent in a form."""
    if not params.has("reply_markup"):
        return None
    markup = params.json("reply_markup", "can't parse reply keyboard markup JSON object")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("object expected as reply markup")
    if not any(kind in markup for kind in _MARKUP_KINDS):
        raise bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard", markup.get("keyboard", []))
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" must be an Array')
    for button in (b for row in rows for b in row if isinstance(b, dict)):
        data = button.get("callback_data")
        if isinstance(data, str) and not 1 <= len(data.encode()) <= CALLBACK_DATA_BYTES:
            raise bad_request("BUTTON_DATA_INVALID")
    return markup


def reply_target(params: Params, chat: TgChat) -> dict[str, Any] | None:
    """The message being replied to (reply_parameters or legacy reply_to_message_id)."""
    message_id: int | None = None
    allow_missing = params.boolean("allow_sending_without_reply")
    if params.has("reply_parameters"):
        value = params.json("reply_parameters", "can't parse reply parameters JSON object")
        if isinstance(value, dict):
            raw = value.get("message_id")
            message_id = raw if isinstance(raw, int) else None
            allow_missing = bool(value.get("allow_sending_without_reply", allow_missing))
            if value.get("chat_id") not in (None, chat.id):
                return None
    else:
        message_id = params.integer("reply_to_message_id")
    if message_id is None:
        return None
    found = chat.messages.get(message_id)
    if found is None:
        if allow_missing:
            return None
        raise bad_request("message to be replied not found")
    shallow = {k: v for k, v in found.items() if k != "reply_to_message"}
    return copy.deepcopy(shallow)


def new_message(
    bot: TgBot,
    chat: TgChat,
    date: int,
    body: dict[str, Any],
    *,
    params: Params | None = None,
    markup: dict[str, Any] | None = None,
    reply_to: dict[str, Any] | None = None,
    media_group_id: str | None = None,
) -> dict[str, Any]:
    """Create, store and return a message the bot sends to `chat`."""
    message: dict[str, Any] = {"message_id": chat.take_message_id()}
    if chat.type == "channel":
        message["sender_chat"] = chat.to_json()
    else:
        message["from"] = bot.user()
    message["chat"] = chat.to_json()
    message["date"] = date
    if params is not None and (thread := params.integer("message_thread_id")) is not None:
        message["message_thread_id"] = thread
    if reply_to is not None:
        message["reply_to_message"] = reply_to
    if media_group_id is not None:
        message["media_group_id"] = media_group_id
    message.update(body)
    if params is not None and params.boolean("protect_content"):
        message["has_protected_content"] = True
    if markup is not None and "inline_keyboard" in markup:
        message["reply_markup"] = {"inline_keyboard": markup["inline_keyboard"]}
    chat.messages[message["message_id"]] = message
    return copy.deepcopy(message)


def sent_by(bot: TgBot, message: dict[str, Any]) -> bool:
    """Whether the bot authored `message` (channel posts count as the bot's own)."""
    sender = message.get("from")
    if isinstance(sender, dict):
        return sender.get("id") == bot.id
    return "sender_chat" in message
