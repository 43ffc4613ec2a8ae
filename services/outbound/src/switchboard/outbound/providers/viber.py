"""Viber REST bot API client: `POST {base}/pa/send_message` with `X-Viber-Auth-Token`.

Account: token in `secrets["token"]`, sender name in `settings["sender_name"]` (set to the
bot's name when the admin API adds it; else the account id; cut to Viber's 28 characters),
optional `settings["sender_avatar"]` and `settings["api_base_url"]` (the sandbox).

Content: text; a photo by URL becomes a `picture` (Viber fetches media itself, so bytes
and file ids cannot be sent); a video by URL a `video` (the caption its text) and a
document by URL a `file`, both with the size in bytes Viber requires (`source.size`,
which `POST /v1/messages` asks the URL for; a command without it is PERMANENT
`viber_unsupported`), a file also with its name (`source.file_name`, else the URL's last
path segment; Viber's file message has no caption); a sticker by numeric id; a
location; a keyboard becomes Viber's keyboard JSON (6 columns per row shared equally,
`reply` buttons send their callback data back, URL buttons `open-url`). Viber bots cannot
quote a message, so `reply_to` is ignored. `tracking_data` carries our message id, which
Viber echoes on the user's next message.

A request's JSON is at most 30 KB and a keyboard has at most 24 buttons: more is refused
before the call (``unsendable``; the API's 422), the size measured on the bytes sent.

Viber answers every API-level failure with HTTP 200 and a non-zero `status`:
- 12 tooManyRequests: RATE_LIMITED for the recipient; at most 100 messages per user per
  hour without a reply, and Viber gives no time, so `retry_after` is the rest of the
  window, `UNREPLIED_WINDOW` (3600 s; a reply from the user clears it earlier).
- 1-11 and 13-24 (documented: invalid URL/token, bad or missing data, receiver not
  registered or not subscribed, account blocked/suspended, webhook not set, ...):
  PERMANENT with code `viber_<status>` and Viber's status message.
- Any other status ("general error"): RETRYABLE.
- HTTP 5xx and timeouts: RETRYABLE; HTTP 429: RATE_LIMITED for the account.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import orjson

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import (
    OutLocation,
    OutMedia,
    OutMediaGroup,
    OutTemplate,
    OutText,
    SendMessage,
)
from switchboard.outbound.providers.base import Failure, ProviderError, Scope, Sent
from switchboard.outbound.providers.transport import (
    DEFAULT_TIMEOUT,
    json_object,
    required_secret,
    send_request,
    status_failure,
    unsupported,
)
from switchboard.outbound.text_limits import unread_markup
from switchboard.runtime.accounts import Account
from switchboard.runtime.button_limits import buttons_problem
from switchboard.runtime.media_kinds import BY_URL, SIZED
from switchboard.runtime.provider_checks import api_base
from switchboard.runtime.viber_bodies import SENDER_NAME_MAX, keyboard_json, sender

PROVIDER = "viber"
VIBER_API = "https://chatapi.viber.com"
TOKEN_HEADER = "X-Viber-Auth-Token"  # noqa: S105  (a header name)
MAX_TRACKING_DATA = 4000
MAX_REQUEST_BYTES = 30 * 1024  # PROTOCOLS.md: "request JSON <= 30 KB" (the sandbox's too)
TOO_MANY_REQUESTS = 12
INVALID_AUTH_TOKEN = 2  # the bot's token: the account waits for the operator to fix it
UNREPLIED_WINDOW = 3600.0
PERMANENT_STATUSES = frozenset(range(1, 25)) - {TOO_MANY_REQUESTS, INVALID_AUTH_TOKEN}
# Video and file messages carry the file's size, which Viber requires (``url_sizes`` asks
# a URL for it).
SIZED_KINDS = SIZED[Channel.VIBER]
MAX_FILE_NAME = 256  # a file message's file_name, extension included


def classify_status(status: int, message: str, body: dict[str, Any]) -> ProviderError:
    """A non-zero Viber `status` as a ProviderError."""
    raw = {"status": status, "status_message": message}
    name = f"viber_{status}"
    if status == TOO_MANY_REQUESTS:
        return ProviderError(
            Failure.RATE_LIMITED,
            name,
            message or "tooManyRequests",
            retry_after=UNREPLIED_WINDOW,
            scope=Scope.RECIPIENT,
            raw=raw,
        )
    if status == INVALID_AUTH_TOKEN:
        return ProviderError(Failure.UNAUTHORIZED, name, message or "invalidAuthToken", raw=raw)
    if status in PERMANENT_STATUSES:
        return ProviderError(Failure.PERMANENT, name, message or f"status {status}", raw=raw)
    return ProviderError(Failure.RETRYABLE, name, message or f"status {status}", raw=raw)


def unsendable(command: SendMessage) -> tuple[str, str] | None:
    """(field, reason) when Viber cannot carry ``command`` as it is, else None: the API
    answers 422 naming the field before anything is queued, and the client refuses a
    command from the bus the same way, without a call."""
    content = command.content
    if (markup := unread_markup(command, "Viber")) is not None:
        return markup
    if isinstance(content, OutMedia):
        source = content.source
        by_url = source.url is not None and content.kind in BY_URL[Channel.VIBER]
        sticker = content.kind == "sticker" and (source.file_id or "").isdigit()
        if not (by_url or sticker):
            return "content.kind", (
                "Viber sends photos, videos and documents by URL and stickers by numeric "
                "id; no other media, and no bytes or file ids"
            )
        if content.kind in SIZED_KINDS and (problem := _file_problem(content)):
            return problem
    if isinstance(content, OutTemplate):
        return "content.kind", "templates are a WhatsApp feature; Viber has none"
    if isinstance(content, OutMediaGroup):
        return "content.kind", "Viber has no albums: send the items one by one"
    if command.keyboard is not None:
        count = sum(len(row) for row in command.keyboard.rows)
        if (too_many := buttons_problem(Channel.VIBER, count)) is not None:
            return "keyboard", too_many
    # The widest sender an account can have by name; an avatar's URL is checked by build.
    body = request_body(command, {"name": "n" * SENDER_NAME_MAX})
    if (size := len(encode(body))) <= MAX_REQUEST_BYTES:
        return None
    field = "content.text" if isinstance(content, OutText) else "content.caption"
    bare = {k: v for k, v in body.items() if k != "keyboard"}
    if "keyboard" in body and len(encode(bare)) <= MAX_REQUEST_BYTES:
        field = "keyboard"
    return field, _over(size)


def _file_problem(content: OutMedia) -> tuple[str, str] | None:
    """What keeps a video or document by URL from being a Viber message: its size (Viber
    requires it), and a document's name and caption (a file message has a name, no text)."""
    if content.source.size is None:
        return "content.source.size", (
            f"Viber needs the {content.kind}'s size in bytes: give content.source.size, or a "
            "URL that answers its Content-Length"
        )
    if content.kind == "document":
        if content.caption:
            return "content.caption", "a Viber file message has no caption: send it as a text"
        name = file_name(content)
        if not name or len(name) > MAX_FILE_NAME:
            return "content.source.file_name", (
                f"a Viber file needs a name of 1-{MAX_FILE_NAME} characters: give "
                "content.source.file_name"
            )
    return None


def file_name(content: OutMedia) -> str:
    """A document's name: as given, else the last segment of its URL's path."""
    if content.source.file_name:
        return content.source.file_name
    path = urlsplit(content.source.url or "").path
    return unquote(path.rsplit("/", 1)[-1])


def _over(size: int) -> str:
    return (
        f"the Viber request would be {size} bytes, over the {MAX_REQUEST_BYTES} Viber takes "
        "(request JSON <= 30 KB): shorten the text or the keyboard"
    )


def encode(body: dict[str, Any]) -> bytes:
    """The request's bytes as sent, so the size checked is the size Viber sees (compact
    JSON, UTF-8 unescaped: a Cyrillic letter is 2 bytes, not the 6 of ``\\uXXXX``)."""
    return orjson.dumps(body)


def request_body(command: SendMessage, sender: dict[str, Any]) -> dict[str, Any]:
    """The send_message body of ``command`` from ``sender`` (no network, no account)."""
    body: dict[str, Any] = {
        "receiver": command.recipient,
        "sender": sender,
        "tracking_data": command.message_id[:MAX_TRACKING_DATA],
    }
    content = command.content
    if isinstance(content, OutText):
        body.update(type="text", text=content.text)
    elif isinstance(content, OutMedia):
        source = content.source
        if content.kind == "photo" and source.url:
            body.update(type="picture", media=source.url)
            if content.caption:
                body["text"] = content.caption
        elif content.kind == "video" and source.url:
            body.update(type="video", media=source.url, size=source.size)
            if content.caption:
                body["text"] = content.caption
        elif content.kind == "document" and source.url:
            body.update(type="file", media=source.url, size=source.size)
            body["file_name"] = file_name(content)
        else:  # a sticker by numeric id (``unsendable``)
            body.update(type="sticker", sticker_id=int(source.file_id or ""))
    elif isinstance(content, OutLocation):
        body.update(type="location", location={"lat": content.latitude, "lon": content.longitude})
    else:  # a template, an album (``unsendable``) or content this client does not know
        raise unsupported(PROVIDER, f"unknown content {type(content).__name__}")
    if command.keyboard is not None:
        keyboard = keyboard_json(command.keyboard)
        if keyboard is not None:
            body["keyboard"] = keyboard
    return body


class ViberClient:
    """Sends through one Viber bot (public account) per account."""

    channel = "viber"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = VIBER_API,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def send(self, account: Account, command: SendMessage) -> Sent:
        """One send_message call; raises ProviderError when it did not go out."""
        token = required_secret(account, PROVIDER, "token")
        body = self.build(account, command)
        base = api_base(account, self.base_url)
        response = await send_request(
            self.http,
            PROVIDER,
            "POST",
            f"{base}/pa/send_message",
            timeout=self.timeout,
            secrets=[token],
            content=body,
            headers={TOKEN_HEADER: token, "Content-Type": "application/json"},
        )
        data = json_object(response)
        if not response.is_success:
            raise status_failure(
                PROVIDER, response, (data or {}).get("status_message"), raw={"body": data}
            )
        if data is None or not isinstance(data.get("status"), int):
            raise ProviderError(
                Failure.RETRYABLE,
                "viber_bad_answer",
                "Viber answered without a status",
                raw={"maybe_sent": True},
            )
        status: int = data["status"]
        if status != 0:
            raise classify_status(status, str(data.get("status_message") or ""), data)
        return Sent(
            provider_message_id=str(data.get("message_token")),
            raw={"chat_hostname": data.get("chat_hostname")},
        )

    def build(self, account: Account, command: SendMessage) -> bytes:
        """The send_message body's bytes (no network); a body over Viber's size (an
        account's long avatar URL beside content that ``unsendable`` let through) is
        refused here, without a call."""
        if (problem := unsendable(command)) is not None:
            raise unsupported(PROVIDER, problem[1])
        body = encode(request_body(command, sender(account)))
        if len(body) > MAX_REQUEST_BYTES:
            raise unsupported(PROVIDER, _over(len(body)))
        return body
