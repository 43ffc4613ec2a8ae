"""Telegram Bot API client: one `SendMessage` becomes one Bot API call.

Content maps to sendMessage, send<Photo|Video|Audio|Voice|Document|Animation|Sticker>,
sendMediaGroup or sendLocation. Media goes as a `file_id`, an HTTP URL (JSON body) or
bytes (multipart upload); every URL or upload is remembered in the injected `FileIdCache`
under (bot, kind, digest), so the same file is uploaded once per bot and re-sent by id.

Choices where Telegram's documentation is silent or the model leaves room:
- A 429 pauses the whole bot (`Scope.ACCOUNT`): Telegram's answer never says whether the
  per-chat, per-group or per-bot limit was hit, and pausing the bot is the safe reading.
  `raw["chat_id"]` is included so the core may narrow it.
- A 400 carrying `parameters.migrate_to_chat_id` (a group became a supergroup) is
  PERMANENT with code `telegram_migrated` and the new id in `raw["migrate_to_chat_id"]`:
  the caller must update the chat id; resending to the old id never works.
- A 400 about a bad file id for an id that came from our cache means the cache is stale:
  the entry is dropped and the failure is RETRYABLE (`telegram_stale_file_id`), so the
  next attempt uploads again. A caller-given bad `file_id` is PERMANENT.
- `reply_to` is sent as `reply_parameters` with `allow_sending_without_reply`, so a reply
  to a deleted message still goes out (without the quote) instead of failing.
- `OutText.preview_url` is honoured: False (the model's default) disables link previews.
- Templates do not exist on Telegram, and media groups cannot carry a keyboard: both are
  PERMANENT `telegram_unsupported` without a call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from switchboard.events.catalog.outbound import (
    AnswerCallback,
    Button,
    DeleteMessage,
    EditMessage,
    Keyboard,
    OutContent,
    OutLocation,
    OutMedia,
    OutMediaGroup,
    OutTemplate,
    OutText,
    SendMessage,
    SetBotCommands,
)
from switchboard.outbound.providers.base import Failure, ProviderError, Scope, Sent
from switchboard.outbound.providers.files import FileIdCache, FileKey, InMemoryFileIdCache
from switchboard.outbound.providers.transport import (
    DEFAULT_TIMEOUT,
    UPLOAD_TIMEOUT,
    inline_upload,
    json_object,
    required_secret,
    retry_after_header,
    send_request,
    unsupported,
)
from switchboard.runtime.accounts import Account
from switchboard.runtime.provider_checks import api_base
from switchboard.runtime.telegram_html import html_problem

PROVIDER = "telegram"
TELEGRAM_API = "https://api.telegram.org"
MEDIA_METHODS = {
    "photo": "sendPhoto",
    "video": "sendVideo",
    "audio": "sendAudio",
    "voice": "sendVoice",
    "document": "sendDocument",
    "animation": "sendAnimation",
    "sticker": "sendSticker",
}
GROUPABLE = frozenset({"photo", "video", "audio", "document"})
DEFAULT_NAMES = {
    "photo": "photo.jpg",
    "video": "video.mp4",
    "audio": "audio.mp3",
    "voice": "voice.ogg",
    "document": "document.bin",
    "animation": "animation.mp4",
    "sticker": "sticker.webp",
}
_STALE_FILE = ("wrong file identifier", "wrong remote file", "file reference", "file_id")
_CALLBACK_BYTES = 64


@dataclass
class _Media:
    """One media parameter ready to send: a string (file_id or URL) or an upload."""

    value: str | None = None
    upload: tuple[str, bytes, str] | None = None
    key: FileKey | None = None
    cached: bool = False


@dataclass
class _Request:
    """A Bot API call being built: JSON-able params, uploads, and cache bookkeeping."""

    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    media: list[tuple[str, _Media]] = field(default_factory=list)  # (kind, media) in order


def bot_id(account: Account) -> str:
    """The numeric bot id from the token (`123:ABC` -> `123`); file ids belong to it."""
    token = account.secrets.get("token", "")
    head = token.split(":", 1)[0]
    return head if head.isdigit() else account.id


def chat_id(recipient: str) -> int | str:
    """Numeric chat ids go as numbers, `@channel` names as strings."""
    text = recipient.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _callback_data(button: Button) -> str:
    """The button's callback_data, or its text cut to Telegram's 64 bytes."""
    if button.callback_data:
        return button.callback_data
    data = button.text.encode()[:_CALLBACK_BYTES]
    return data.decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class Target:
    """The message an edit or a deletion changes."""

    recipient: str
    provider_message_id: str


Interaction = AnswerCallback | EditMessage | DeleteMessage | SetBotCommands


def interaction_request(command: Interaction, target: Target | None) -> _Request:
    """The Bot API call of an interaction: answerCallbackQuery, editMessageText,
    editMessageCaption, editMessageReplyMarkup or deleteMessage."""
    if isinstance(command, AnswerCallback):
        params: dict[str, Any] = {"callback_query_id": command.callback_query_id}
        if command.text:
            params["text"] = command.text
        if command.show_alert:
            params["show_alert"] = True
        if command.url:
            params["url"] = command.url
        if command.cache_time is not None:
            params["cache_time"] = command.cache_time
        return _Request("answerCallbackQuery", params)
    if isinstance(command, SetBotCommands):
        params = {"commands": [c.model_dump() for c in command.commands]}
        if command.language_code:
            params["language_code"] = command.language_code
        return _Request("setMyCommands", params)
    if target is None:
        raise ProviderError(Failure.PERMANENT, "unknown_message", "no message to change")
    params = {"chat_id": chat_id(target.recipient)}
    if not target.provider_message_id.isdigit():
        raise ProviderError(
            Failure.PERMANENT, "telegram_bad_message_id", "a Telegram message id is a number"
        )
    params["message_id"] = int(target.provider_message_id)
    if isinstance(command, DeleteMessage):
        return _Request("deleteMessage", params)
    if command.keyboard is not None:
        params["reply_markup"] = reply_markup(command.keyboard) or {"inline_keyboard": []}
    if command.parse_mode:
        params["parse_mode"] = command.parse_mode
    if command.text is not None:
        return _Request("editMessageText", {**params, "text": command.text})
    if command.caption is not None:
        return _Request("editMessageCaption", {**params, "caption": command.caption})
    return _Request("editMessageReplyMarkup", params)


def reply_markup(keyboard: Keyboard) -> dict[str, Any] | None:
    """Our Keyboard as InlineKeyboardMarkup, ReplyKeyboardMarkup or ReplyKeyboardRemove.

    Inline buttons need an action: a `url`, else `callback_data` (the text when none is
    given). Reply keyboards only carry the texts the user can tap.
    """
    if keyboard.type == "remove":
        return {"remove_keyboard": True}
    rows = [row for row in keyboard.rows if row]
    if not rows:
        return None
    if keyboard.type == "inline":
        return {
            "inline_keyboard": [
                [
                    {"text": b.text, "url": b.url}
                    if b.url
                    else {"text": b.text, "callback_data": _callback_data(b)}
                    for b in row
                ]
                for row in rows
            ]
        }
    return {
        "keyboard": [[{"text": b.text} for b in row] for row in rows],
        "resize_keyboard": True,
        "one_time_keyboard": keyboard.one_time,
    }


def largest_photo(sizes: list[Any]) -> dict[str, Any] | None:
    """The biggest PhotoSize (by pixels, then bytes): the one worth re-sending."""
    candidates = [s for s in sizes if isinstance(s, dict) and s.get("file_id")]
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda s: (int(s.get("width", 0)) * int(s.get("height", 0)), s.get("file_size", 0)),
    )


def sent_file_id(message: dict[str, Any], kind: str) -> str | None:
    """The file_id Telegram gave the media of a sent message (largest size for photos)."""
    if kind == "photo":
        photo = largest_photo(message.get("photo") or [])
        return str(photo["file_id"]) if photo else None
    obj = message.get(kind)
    if not isinstance(obj, dict) and kind == "animation":
        obj = message.get("document")
    if isinstance(obj, dict) and obj.get("file_id"):
        return str(obj["file_id"])
    return None


def classify_error(
    response: httpx.Response, body: dict[str, Any] | None, chat: int | str | None = None
) -> ProviderError:
    """A failed Bot API answer as a ProviderError (see the module doc for the rules)."""
    status = response.status_code
    code = body.get("error_code") if body else None
    if not isinstance(code, int):
        code = status
    description = str((body or {}).get("description") or response.reason_phrase or status)
    parameters = (body or {}).get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    raw: dict[str, Any] = {"error_code": code, "description": description}
    if parameters:
        raw["parameters"] = parameters
    if chat is not None:
        raw["chat_id"] = chat
    if code == 429 or status == 429:
        after = parameters.get("retry_after")
        retry_after = (
            float(after)
            if isinstance(after, int | float)
            else retry_after_header(response.headers) or 1.0
        )
        return ProviderError(
            Failure.RATE_LIMITED,
            "telegram_429",
            description,
            retry_after=retry_after,
            scope=Scope.ACCOUNT,
            raw=raw,
        )
    if parameters.get("migrate_to_chat_id") is not None:
        raw["migrate_to_chat_id"] = parameters["migrate_to_chat_id"]
        return ProviderError(Failure.PERMANENT, "telegram_migrated", description, raw=raw)
    if code >= 500 or status >= 500:
        return ProviderError(Failure.RETRYABLE, f"telegram_{code}", description, raw=raw)
    if code == 401:  # "Unauthorized": the bot's token was revoked or is wrong
        return ProviderError(Failure.UNAUTHORIZED, "telegram_401", description, raw=raw)
    return ProviderError(Failure.PERMANENT, f"telegram_{code}", description, raw=raw)


def _form_value(value: Any) -> str:
    """A multipart field: strings as they are, everything else as JSON (Bot API rule)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def unsendable(command: SendMessage) -> tuple[str, str] | None:
    """(field, reason) when a bot cannot send ``command`` as it is, else None: the API
    answers 422 naming the field before anything is queued, and the client refuses a
    command from the bus the same way, without a call."""
    content = command.content
    if command.reply_to and not _is_int(command.reply_to):
        return "reply_to", f"reply_to must be a Telegram message id, got {command.reply_to!r}"
    if isinstance(content, OutTemplate):
        return "content.kind", "templates are a WhatsApp feature; Telegram has none"
    for where, html in _html_texts(content):
        if (problem := html_problem(html)) is not None:
            return where, f"Telegram cannot parse this HTML: {problem}"
    if isinstance(content, OutMediaGroup):
        if command.keyboard is not None and reply_markup(command.keyboard) is not None:
            return "keyboard", "a media group cannot carry a keyboard"
        for index, item in enumerate(content.items):
            if item.kind not in GROUPABLE:
                return f"content.items.{index}.kind", (
                    f"a media group holds photos, videos, audio or documents, not {item.kind}"
                )
    return None


def _html_texts(content: OutContent) -> list[tuple[str, str]]:
    """(field, text) of every text and caption of ``content`` written in HTML."""
    if isinstance(content, OutText):
        return [("content.text", content.text)] if content.parse_mode == "HTML" else []
    items = [("content", content)] if isinstance(content, OutMedia) else []
    if isinstance(content, OutMediaGroup):
        items = [(f"content.items.{i}", item) for i, item in enumerate(content.items)]
    return [(f"{where}.caption", item.caption) for where, item in items
            if item.caption and item.parse_mode == "HTML"]  # fmt: skip


def unparsable_edit(command: EditMessage) -> tuple[str, str] | None:
    """(field, reason) when an edit's new text or caption is HTML Telegram cannot parse."""
    if command.parse_mode != "HTML":
        return None
    for name, text in (("text", command.text), ("caption", command.caption)):
        if text is not None and (problem := html_problem(text)) is not None:
            return name, f"Telegram cannot parse this HTML: {problem}"
    return None


class TelegramClient:
    """Sends through one bot per account: `account.secrets["token"]`, optional
    `account.settings["api_base_url"]` (a local Bot API server, the sandbox)."""

    channel = "telegram"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = TELEGRAM_API,
        file_ids: FileIdCache | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        upload_timeout: httpx.Timeout | float = UPLOAD_TIMEOUT,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.file_ids: FileIdCache = file_ids if file_ids is not None else InMemoryFileIdCache()
        self.timeout = timeout
        self.upload_timeout = upload_timeout

    async def send(self, account: Account, command: SendMessage) -> Sent:
        """One Bot API call for `command`; raises ProviderError when it did not go out."""
        token = required_secret(account, PROVIDER, "token")
        request = await self._build(account, command)
        result = await self._call(account, token, request)
        return await self._sent(request, result)

    async def interact(self, account: Account, command: Interaction, target: Target | None) -> Any:
        """One Bot API call answering a callback query, or editing or deleting the message
        ``target`` (chat, provider message id); returns Telegram's ``result``."""
        token = required_secret(account, PROVIDER, "token")
        return await self._call(account, token, interaction_request(command, target))

    # -- building requests ------------------------------------------------------------

    async def _build(self, account: Account, command: SendMessage) -> _Request:
        """The Bot API method and parameters for `command` (cache lookups, no sending)."""
        if (problem := unsendable(command)) is not None:
            field, reason = problem
            if field == "reply_to":
                raise ProviderError(Failure.PERMANENT, "telegram_bad_reply_to", reason)
            raise unsupported(PROVIDER, reason)
        params: dict[str, Any] = {"chat_id": chat_id(command.recipient)}
        if command.reply_to:
            params["reply_parameters"] = {
                "message_id": int(command.reply_to),
                "allow_sending_without_reply": True,
            }
        content = command.content
        markup = reply_markup(command.keyboard) if command.keyboard else None
        if markup is not None and not isinstance(content, OutMediaGroup):
            params["reply_markup"] = markup
        owner = f"telegram:{bot_id(account)}"
        if isinstance(content, OutText):
            params["text"] = content.text
            if content.parse_mode:
                params["parse_mode"] = content.parse_mode
            params["link_preview_options"] = {"is_disabled": not content.preview_url}
            return _Request("sendMessage", params)
        if isinstance(content, OutMedia):
            request = _Request(MEDIA_METHODS[content.kind], params)
            media = await self._media(owner, content)
            self._attach(request, content.kind, content.kind, media)
            if content.caption and content.kind != "sticker":
                params["caption"] = content.caption
                if content.parse_mode:
                    params["parse_mode"] = content.parse_mode
            return request
        if isinstance(content, OutMediaGroup):
            return await self._media_group(owner, content, params)
        if isinstance(content, OutLocation):
            params["latitude"] = content.latitude
            params["longitude"] = content.longitude
            return _Request("sendLocation", params)
        raise unsupported(PROVIDER, f"unknown content {type(content).__name__}")

    async def _media_group(
        self, owner: str, group: OutMediaGroup, params: dict[str, Any]
    ) -> _Request:
        """sendMediaGroup: InputMedia items, uploads attached as `attach://file<i>`."""
        request = _Request("sendMediaGroup", params)
        items: list[dict[str, Any]] = []
        for index, item in enumerate(group.items):  # kinds checked (``unsendable``)
            media = await self._media(owner, item)
            entry: dict[str, Any] = {"type": item.kind}
            self._attach(request, item.kind, f"file{index}", media)
            entry["media"] = media.value if media.value is not None else f"attach://file{index}"
            if item.caption:
                entry["caption"] = item.caption
                if item.parse_mode:
                    entry["parse_mode"] = item.parse_mode
            items.append(entry)
        params["media"] = items
        return request

    @staticmethod
    def _attach(request: _Request, kind: str, name: str, media: _Media) -> None:
        """Put `media` into the request: as param `name` (single sends) or as an upload."""
        request.media.append((kind, media))
        if media.upload is not None:
            request.files[name] = media.upload
        elif request.method != "sendMediaGroup":
            request.params[name] = media.value

    async def _media(self, owner: str, item: OutMedia) -> _Media:
        """The file_id, URL or upload for `item`, using the cache for URLs and bytes."""
        source = item.source
        if source.file_id:
            return _Media(value=source.file_id)
        if source.url:
            key = FileKey.for_url(owner, item.kind, source.url)
            cached = await self.file_ids.get(key)
            if cached:
                return _Media(value=cached, key=key, cached=True)
            return _Media(value=source.url, key=key)
        upload = inline_upload(
            PROVIDER, source, DEFAULT_NAMES[item.kind], "application/octet-stream"
        )
        _, data, _ = upload
        key = FileKey.for_bytes(owner, item.kind, data)
        cached = await self.file_ids.get(key)
        if cached:
            return _Media(value=cached, key=key, cached=True)
        return _Media(upload=upload, key=key)

    # -- calling and reading answers --------------------------------------------------

    async def _call(self, account: Account, token: str, request: _Request) -> Any:
        """POST the request (JSON, or multipart when it uploads) and return `result`;
        a refused cached file id is evicted so that the next attempt uploads again."""
        base = api_base(account, self.base_url)
        url = f"{base}/bot{token}/{request.method}"
        payload: dict[str, Any] = {"json": request.params}
        if request.files:
            data = {name: _form_value(value) for name, value in request.params.items()}
            payload = {"data": data, "files": request.files}
        timeout = self.upload_timeout if request.files else self.timeout
        response = await send_request(
            self.http, PROVIDER, "POST", url, timeout=timeout, secrets=[token], **payload
        )
        body = json_object(response)
        if response.is_success and body is not None and body.get("ok") is True:
            return body.get("result")
        error = classify_error(response, body, request.params.get("chat_id"))
        stale = [m.key for _, m in request.media if m.cached and m.key is not None]
        if stale and response.status_code == 400 and _is_file_error(error.reason):
            for key in stale:
                await self.file_ids.delete(key)
            error.failure = Failure.RETRYABLE
            error.code = "telegram_stale_file_id"
            error.raw["maybe_sent"] = False
        raise error

    async def _sent(self, request: _Request, result: Any) -> Sent:
        """The Sent of an accepted call, after caching the file ids Telegram assigned."""
        messages = result if isinstance(result, list) else [result]
        messages = [m for m in messages if isinstance(m, dict)]
        if not messages or "message_id" not in messages[0]:
            raise ProviderError(
                Failure.PERMANENT,
                "telegram_bad_answer",
                "Telegram answered ok without a message",
                raw={"result": result, "maybe_sent": True},
            )
        for (kind, media), message in zip(request.media, messages, strict=False):
            if media.key is None or media.cached:
                continue
            file_id = sent_file_id(message, kind)
            if file_id:
                await self.file_ids.put(media.key, file_id)
        ids = [int(m["message_id"]) for m in messages]
        chat = messages[0].get("chat") or {}
        raw: dict[str, Any] = {
            "method": request.method,
            "chat_id": chat.get("id"),
            "chat_type": chat.get("type"),
            "chat_title": chat.get("title"),
        }
        if len(ids) > 1 or request.method == "sendMediaGroup":
            raw["message_ids"] = ids
        return Sent(provider_message_id=str(ids[0]), raw=raw)


def _is_file_error(description: str) -> bool:
    """Whether Telegram refused a file id (rather than the chat or the text)."""
    text = description.lower()
    return any(marker in text for marker in _STALE_FILE)
