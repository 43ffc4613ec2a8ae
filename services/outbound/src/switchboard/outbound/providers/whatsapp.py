"""WhatsApp Cloud API client: `POST /{version}/{phone_number_id}/messages` per send.

Account: `settings["phone_number_id"]`, optional `settings["graph_version"]` and
`settings["api_base_url"]` (the sandbox), bearer token in `secrets["access_token"]`.

Mapping: text (`preview_url`), template (name, `language.code`, components), media as
`{id}` or `{link}` (bytes are first uploaded with `POST /{phone_number_id}/media`, and the
media id is cached per number for 29 days, since Meta keeps uploads 30 days), location,
reply context `{message_id}`. A keyboard makes the message interactive: up to 3 buttons
become reply buttons, 4 to 10 a list message, a single URL button a `cta_url` message.

Classification (Graph `error.code` decides; the HTTP status only when there is no code):
- 131047: PERMANENT, "more than 24 h since the customer last wrote: only templates are
  allowed".
- 130429 throughput, 80007 WABA rate limit, 4 app call limit, 131048 spam rate limit,
  131057 throughput upgrade: RATE_LIMITED for the number (`Scope.ACCOUNT`); 131056 pair
  rate limit: RATE_LIMITED for the recipient. `retry_after` is the `Retry-After` header
  when present, otherwise `RETRY_AFTER_DEFAULTS` (Meta publishes no wait times: the values
  follow the limits' windows; see there).
- 1, 2, 131000, 131016, 133004, `is_transient: true`, HTTP 5xx, timeouts: RETRYABLE.
- 190 (the access token expired or was revoked) or HTTP 401: UNAUTHORIZED: the number
  waits, its messages unspent, until the operator gives the account a valid token.
- Anything else (4xx): PERMANENT, with Meta's message and details as the reason.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import httpx

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import (
    Button,
    Keyboard,
    OutLocation,
    OutMedia,
    OutMediaGroup,
    OutTemplate,
    OutText,
    SendMessage,
)
from switchboard.outbound.providers.base import Failure, ProviderError, Scope, Sent
from switchboard.outbound.providers.files import FileIdCache, FileKey, InMemoryFileIdCache
from switchboard.outbound.providers.transport import (
    DEFAULT_TIMEOUT,
    UPLOAD_TIMEOUT,
    bearer_call,
    inline_upload,
    missing_config,
    retry_after_header,
    status_failure,
    unsupported,
)
from switchboard.outbound.text_limits import unread_markup
from switchboard.runtime.accounts import Account
from switchboard.runtime.button_limits import buttons_problem
from switchboard.runtime.media_kinds import WITH_BUTTONS
from switchboard.runtime.provider_checks import api_base

PROVIDER = "whatsapp"
GRAPH_API = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v26.0"
MEDIA_TTL = 29 * 24 * 3600.0
"""Uploaded media ids are kept 30 days by Meta; forget them a day earlier."""

WINDOW_CLOSED = 131047
INVALID_TOKEN = 190  # OAuthException: the access token expired or was revoked
WINDOW_REASON = "more than 24 h since the customer last wrote: only templates are allowed"

RETRY_AFTER_DEFAULTS: dict[int, float] = {
    130429: 1.0,  # throughput is counted per second (80/s per number)
    131056: 6.0,  # pair limit: about one message per 6 s to the same user
    80007: 60.0,  # WABA rate limit: Meta says "wait and retry", windows are minutes long
    4: 60.0,  # app call limit: usage is computed over a rolling hour, back off a minute
    131048: 300.0,  # spam rate limit: quality-based, needs a long pause
    131057: 60.0,  # throughput upgrade in progress: minutes
}
RECIPIENT_LIMITED = frozenset({131056})
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})

MEDIA_KINDS = {
    "photo": "image",
    "video": "video",
    "audio": "audio",
    "voice": "audio",
    "document": "document",
    "animation": "video",
    "sticker": "sticker",
}
CAPTIONED = frozenset({"image", "video", "document"})
DEFAULT_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg",
    "document": "application/pdf",
    "sticker": "image/webp",
}
# Media under buttons, and how many: reply buttons under a media header (a list has none).
HEADER_KINDS, MAX_REPLY_BUTTONS = WITH_BUTTONS[Channel.WHATSAPP]
BUTTON_TITLE = 20
ROW_TITLE = 24
ROW_DESCRIPTION = 72
LIST_BUTTON = "Options"


def _fit(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _button_id(button: Button) -> str:
    """What WhatsApp sends back when the button is tapped: callback data, else the text."""
    return button.callback_data or button.text


def keyboard_problem(keyboard: Keyboard, *, media: bool) -> str | None:
    """Why WhatsApp cannot show ``keyboard`` (under a media header when ``media``), or None:
    more than 10 buttons, a URL button beside others, a list (4-10) with media."""
    if keyboard.type == "remove":
        return None
    buttons = [b for row in keyboard.rows for b in row]
    if not buttons:
        return None
    if any(b.url for b in buttons):
        if len(buttons) != 1:
            return "WhatsApp allows one URL button per message, without reply buttons"
        return None
    if (problem := buttons_problem(Channel.WHATSAPP, len(buttons))) is not None:
        return problem
    if len(buttons) > MAX_REPLY_BUTTONS and media:
        return "list messages (4-10 buttons) cannot carry media"
    return None


def unsendable(command: SendMessage) -> tuple[str, str] | None:
    """(field, reason) when WhatsApp cannot carry ``command`` as it is, else None: the API
    answers 422 naming the field before anything is queued, and the client refuses a
    command from the bus the same way, without a call."""
    content, keyboard = command.content, command.keyboard
    if isinstance(content, OutMediaGroup):
        return "content.kind", "WhatsApp has no albums: send the items one by one"
    if (markup := unread_markup(command, "WhatsApp")) is not None:
        return markup
    if keyboard is None:
        return None
    if isinstance(content, OutTemplate):
        if keyboard.rows:
            return "keyboard", "template buttons are defined by the template itself"
        return None
    if isinstance(content, OutMedia):
        if keyboard.type == "remove" or not keyboard.rows:
            return None
        if content.kind not in HEADER_KINDS or not content.caption:
            return "keyboard", "buttons with media need an image, video or document and a caption"
        problem = keyboard_problem(keyboard, media=True)
    elif isinstance(content, OutText):
        problem = keyboard_problem(keyboard, media=False)
    else:
        return None
    return None if problem is None else ("keyboard", problem)


def interactive(
    keyboard: Keyboard,
    body: str,
    header: dict[str, Any] | None = None,
    list_button: str = LIST_BUTTON,
) -> dict[str, Any] | None:
    """The `interactive` object for a keyboard under `body`, or None when there are no
    buttons (a "remove" keyboard has no WhatsApp meaning: it is dropped).

    1-3 reply buttons -> `button` (titles cut to 20 characters); 4-10 -> `list` (one
    section, titles cut to 24, the full text in the row description when cut); exactly
    one URL button -> `cta_url`. More than 10 buttons, or URL buttons mixed with others,
    cannot be expressed: PERMANENT `whatsapp_unsupported`.
    """
    if (problem := keyboard_problem(keyboard, media=header is not None)) is not None:
        raise unsupported(PROVIDER, problem)
    if keyboard.type == "remove":
        return None
    buttons = [b for row in keyboard.rows for b in row]
    if not buttons:
        return None
    links = [b for b in buttons if b.url]
    if links:
        result: dict[str, Any] = {
            "type": "cta_url",
            "body": {"text": body},
            "action": {
                "name": "cta_url",
                "parameters": {
                    "display_text": _fit(links[0].text, BUTTON_TITLE),
                    "url": links[0].url,
                },
            },
        }
    elif len(buttons) <= MAX_REPLY_BUTTONS:
        result = {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {
                        "type": "reply",
                        "reply": {"id": _button_id(b), "title": _fit(b.text, BUTTON_TITLE)},
                    }
                    for b in buttons
                ]
            },
        }
    else:  # 4-10 (``keyboard_problem``)
        rows = []
        for b in buttons:
            row: dict[str, Any] = {"id": _button_id(b), "title": _fit(b.text, ROW_TITLE)}
            if len(b.text) > ROW_TITLE:
                row["description"] = _fit(b.text, ROW_DESCRIPTION)
            rows.append(row)
        result = {
            "type": "list",
            "body": {"text": body},
            "action": {"button": list_button, "sections": [{"rows": rows}]},
        }
    if header is not None:
        result["header"] = header
    return result


def _upload_error(response: httpx.Response, body: dict[str, Any] | None) -> ProviderError:
    """A refused media upload: read as any refusal, marked as the upload's."""
    error = classify_error(response, body)
    error.raw["stage"] = "upload"
    return error


def classify_error(response: httpx.Response, body: dict[str, Any] | None) -> ProviderError:
    """A failed Graph answer as a ProviderError (see the module doc for the table)."""
    error = (body or {}).get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return status_failure(PROVIDER, response, raw={"body": body} if body else None)
    code: int = error["code"]
    message = str(error.get("message") or response.reason_phrase)
    details = (
        (error.get("error_data") or {}).get("details")
        if isinstance(error.get("error_data"), dict)
        else None
    )
    reason = f"{message}: {details}" if details else message
    raw: dict[str, Any] = {"error": error, "http_status": response.status_code}
    name = f"whatsapp_{code}"
    if code == WINDOW_CLOSED:
        return ProviderError(Failure.PERMANENT, name, WINDOW_REASON, raw=raw)
    if code == INVALID_TOKEN or response.status_code == 401:
        return ProviderError(Failure.UNAUTHORIZED, name, reason, raw=raw)
    if code in RETRY_AFTER_DEFAULTS:
        after = retry_after_header(response.headers)
        return ProviderError(
            Failure.RATE_LIMITED,
            name,
            reason,
            retry_after=RETRY_AFTER_DEFAULTS[code] if after is None else after,
            scope=Scope.RECIPIENT if code in RECIPIENT_LIMITED else Scope.ACCOUNT,
            raw=raw,
        )
    if code in TRANSIENT_CODES or error.get("is_transient") is True or response.status_code >= 500:
        return ProviderError(Failure.RETRYABLE, name, reason, raw=raw)
    if response.status_code == 429:
        return status_failure(
            PROVIDER, response, reason, code=name, raw=raw, default_retry_after=60.0
        )
    return ProviderError(Failure.PERMANENT, name, reason, raw=raw)


class WhatsAppClient:
    """Sends through one business phone number per account."""

    channel = "whatsapp"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str = GRAPH_API,
        graph_version: str = DEFAULT_GRAPH_VERSION,
        file_ids: FileIdCache | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        upload_timeout: httpx.Timeout | float = UPLOAD_TIMEOUT,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.graph_version = graph_version
        self.file_ids: FileIdCache = file_ids if file_ids is not None else InMemoryFileIdCache()
        self.timeout = timeout
        self.upload_timeout = upload_timeout

    def _root(self, account: Account) -> tuple[str, str, str]:
        """(`{base}/{version}/{phone_number_id}`, phone_number_id, token) of the account."""
        number = str(account.settings.get("phone_number_id") or "")
        token = account.secrets.get("access_token")
        if not number or not token:
            raise missing_config(PROVIDER, "settings['phone_number_id']", "secrets['access_token']")
        base = api_base(account, self.base_url)
        version = str(account.settings.get("graph_version") or self.graph_version)
        return f"{base}/{version}/{number}", number, token

    async def send(self, account: Account, command: SendMessage) -> Sent:
        """One send (preceded by a media upload when the content is bytes)."""
        root, number, token = self._root(account)
        body = await self.build(account, command)
        url = f"{root}/messages"
        data = await bearer_call(
            self.http, PROVIDER, url, token, classify_error, timeout=self.timeout, json=body
        )
        messages = (data or {}).get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
            raise ProviderError(
                Failure.PERMANENT,
                "whatsapp_bad_answer",
                "WhatsApp answered without a message id",
                raw={"body": data, "maybe_sent": True},
            )
        wamid = str(messages[0].get("id"))
        raw: dict[str, Any] = {"phone_number_id": number}
        contacts = (data or {}).get("contacts")
        if isinstance(contacts, list) and contacts and isinstance(contacts[0], dict):
            wa_id = contacts[0].get("wa_id")
            raw["wa_id"] = wa_id
            if isinstance(wa_id, str) and wa_id.isascii() and wa_id.isdigit():
                # The chat as inbound messages and receipts name it: a recipient given as
                # "+1 650-555-1234" is 16505551234 (a BSUID recipient comes back as itself).
                raw["chat_id"] = wa_id
        if messages[0].get("message_status"):
            raw["message_status"] = messages[0]["message_status"]
        return Sent(provider_message_id=wamid, raw=raw)

    async def build(self, account: Account, command: SendMessage) -> dict[str, Any]:
        """The JSON body of the send (uploads bytes first, so it may call the API)."""
        if (problem := unsendable(command)) is not None:
            raise unsupported(PROVIDER, problem[1])
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": command.recipient,
        }
        if command.reply_to:
            body["context"] = {"message_id": command.reply_to}
        content = command.content
        keyboard = command.keyboard
        list_button = str(account.settings.get("list_button") or LIST_BUTTON)
        if isinstance(content, OutText):
            action = interactive(keyboard, content.text, None, list_button) if keyboard else None
            if action is not None:
                body.update(type="interactive", interactive=action)
            else:
                body.update(
                    type="text", text={"body": content.text, "preview_url": content.preview_url}
                )
        elif isinstance(content, OutTemplate):
            template: dict[str, Any] = {
                "name": content.name,
                "language": {"code": content.language},
            }
            if content.components:
                template["components"] = [dict(c) for c in content.components]
            body.update(type="template", template=template)
        elif isinstance(content, OutMedia):
            kind = MEDIA_KINDS[content.kind]
            media = await self._media(account, content, kind)
            buttons = keyboard is not None and keyboard.type != "remove" and keyboard.rows
            if buttons and keyboard is not None and content.caption:  # (``unsendable``)
                header = {"type": kind, kind: media}
                action = interactive(keyboard, content.caption, header, list_button)
                body.update(type="interactive", interactive=action)
            else:
                if content.caption and kind in CAPTIONED:
                    media["caption"] = content.caption
                if kind == "document" and content.source.file_name:
                    media["filename"] = content.source.file_name
                body.update(type=kind, **{kind: media})
        elif isinstance(content, OutLocation):
            body.update(
                type="location",
                location={"latitude": content.latitude, "longitude": content.longitude},
            )
        else:  # an album (``unsendable``) or content this client does not know
            raise unsupported(PROVIDER, f"unknown content {type(content).__name__}")
        return body

    async def _media(self, account: Account, item: OutMedia, kind: str) -> dict[str, Any]:
        """`{"id": ...}` or `{"link": ...}`; bytes are uploaded once per number and cached."""
        source = item.source
        if source.file_id:
            return {"id": source.file_id}
        if source.url:
            return {"link": source.url}
        default_name = f"{kind}{mimetypes.guess_extension(DEFAULT_MIME[kind]) or ''}"
        name, data, mime = inline_upload(PROVIDER, source, default_name, DEFAULT_MIME[kind])
        root, number, token = self._root(account)
        key = FileKey.for_bytes(f"whatsapp:{number}", kind, data)
        cached = await self.file_ids.get(key)
        if cached:
            return {"id": cached}
        answer = await bearer_call(
            self.http,
            PROVIDER,
            f"{root}/media",
            token,
            _upload_error,
            timeout=self.upload_timeout,
            data={"messaging_product": "whatsapp", "type": mime},
            files={"file": (name, data, mime)},
        )
        media_id = (answer or {}).get("id")
        if not media_id:
            raise ProviderError(
                Failure.RETRYABLE, "whatsapp_bad_answer", "the media upload returned no id"
            )
        await self.file_ids.put(key, str(media_id), ttl=MEDIA_TTL)
        return {"id": str(media_id)}
