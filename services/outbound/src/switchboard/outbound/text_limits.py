"""The providers' limits on a message's text, checked before a send is queued: a text the
provider is bound to refuse is a 422 naming the field at once, not a ``delivery.failed``
("message is too long") after the call.

Telegram (bots and user accounts) takes 1-4096 characters of text and 0-1024 of a bot's
caption, counted after entities parsing (PROTOCOLS.md; the Bot API's own words, quoted in
aiogram): with ``parse_mode`` HTML the tags do not count and an entity is one character,
so what is measured is the text a reader sees. Markdown modes are not measured: their
markup cannot be told from the text without Telegram's own parser (a link's URL is not
shown, an escaped ``\\.`` is one character), and refusing a text Telegram would take is
worse than a refusal from Telegram (a user account's markup is read by our own parser, which
makes the entities it sends, so there MarkdownV2 is measured too). A user account's
caption is not measured either
(Premium accounts take 2048). WhatsApp takes a text body of at most 4096 characters
(PROTOCOLS.md; pywa), and a caption, or the body of an interactive message (a text or
caption with buttons), of at most 1024 (the Cloud API reference, as the sandbox's fake
enforces them: error 100 after the call). Viber takes a text of at most 7000 characters
and a picture's text of at most 512 (Viber's REST Bot API reference, as the sandbox's fake
enforces them: status 3 ``badData`` after the call). Characters are code points, never more
than Telegram's UTF-16 count.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import (
    EditMessage,
    Keyboard,
    OutMedia,
    OutMediaGroup,
    OutText,
    SendMessage,
)
from switchboard.runtime.button_limits import BODY_MAX
from switchboard.runtime.markup import words
from switchboard.runtime.media_kinds import CAPTION_MAX

TELEGRAM_TEXT, WHATSAPP_TEXT, VIBER_TEXT = 4096, 4096, 7000
TELEGRAM_CAPTION = CAPTION_MAX[Channel.TELEGRAM]
WHATSAPP_CAPTION = CAPTION_MAX[Channel.WHATSAPP]
VIBER_CAPTION = CAPTION_MAX[Channel.VIBER]
TELEGRAM_CALLBACK_BYTES = 64  # a button's callback_data: "1-64 bytes" (the Bot API, aiogram)


@dataclass(frozen=True)
class TooLong:
    """A text over its provider's limit: the field, its length and the limit (characters)."""

    field: str
    length: int
    limit: int
    what: str
    unit: str = "characters"

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.length} {self.unit} is over the {self.limit} of {self.what}"


class _Shown(HTMLParser):
    """The characters of HTML a reader sees (tags dropped, entities one character each)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.length = 0

    def handle_data(self, data: str) -> None:
        self.length += len(data)


def shown_length(text: str, parse_mode: str | None) -> int | None:
    """How many characters of ``text`` Telegram counts; None where that needs its parser."""
    if parse_mode is None:
        return len(text)
    if parse_mode != "HTML":
        return None
    shown = _Shown()
    shown.feed(text)
    shown.close()
    return shown.length


def _texts(cmd: SendMessage) -> list[tuple[str, str, str | None, bool]]:
    """(field, text, parse mode, is a caption) of every text ``cmd`` carries."""
    content = cmd.content
    if isinstance(content, OutText):
        return [("content.text", content.text, content.parse_mode, False)]
    items = [("content", content)] if isinstance(content, OutMedia) else []
    if isinstance(content, OutMediaGroup):
        items = [(f"content.items.{i}", item) for i, item in enumerate(content.items)]
    # a caption is measured as a text is: by what shows under its own parse mode
    return [(f"{where}.caption", item.caption, item.parse_mode, True) for where, item in items
            if item.caption is not None]  # fmt: skip


def _limit(channel: Channel, caption: bool, interactive: bool) -> tuple[int, str] | None:
    if channel is Channel.TELEGRAM:
        if caption:
            return TELEGRAM_CAPTION, "a Telegram caption"
        return TELEGRAM_TEXT, "a Telegram text"
    if channel is Channel.MTPROTO and not caption:
        return TELEGRAM_TEXT, "a Telegram text"
    if channel is Channel.WHATSAPP:
        if caption:
            return WHATSAPP_CAPTION, "a WhatsApp caption"
        if interactive:
            return BODY_MAX[Channel.WHATSAPP], "the body of a WhatsApp message with buttons"
        return WHATSAPP_TEXT, "a WhatsApp text body"
    if channel is Channel.VIBER:
        if caption:
            return VIBER_CAPTION, "a Viber picture's text"
        return VIBER_TEXT, "a Viber text"
    return None


def too_long(cmd: SendMessage) -> TooLong | None:
    """The first text of ``cmd`` over its provider's limit, or None. A Telegram button's
    data is counted in bytes (the catalog's 64 is characters: 40 Cyrillic letters pass it
    and Telegram refuses them)."""
    if cmd.channel is Channel.TELEGRAM and (over := _callback_data(cmd.keyboard)) is not None:
        return over
    keyboard = cmd.keyboard
    interactive = keyboard is not None and keyboard.type != "remove" and any(keyboard.rows)
    for field, text, mode, caption in _texts(cmd):
        limit = _limit(cmd.channel, caption, interactive)
        if cmd.channel is Channel.MTPROTO and mode is not None:
            # a user account sends the words our own parser reads (the gateway's entities),
            # so a MarkdownV2 text is measured too
            text, mode = words(text, mode), None
        if limit is not None and (over := _over(field, text, mode, *limit)) is not None:
            return over
    return None


def edit_too_long(cmd: EditMessage) -> TooLong | None:
    """An edit's new text, caption or button data over Telegram's limits (the same as a
    send's), or None: ``editMessageText`` answers "message is too long" after the call."""
    if (over := _callback_data(cmd.keyboard)) is not None:
        return over
    if cmd.text is not None:
        return _over("text", cmd.text, cmd.parse_mode, TELEGRAM_TEXT, "a Telegram text")
    if cmd.caption is not None:
        return _over("caption", cmd.caption, cmd.parse_mode, TELEGRAM_CAPTION,
                     "a Telegram caption")  # fmt: skip
    return None


def _callback_data(keyboard: Keyboard | None) -> TooLong | None:
    """The first Telegram button whose data is over 64 bytes, or None."""
    for i, row in enumerate(keyboard.rows if keyboard is not None else ()):
        for j, button in enumerate(row):
            size = len((button.callback_data or "").encode())
            if size > TELEGRAM_CALLBACK_BYTES:
                return TooLong(f"keyboard.rows.{i}.{j}.callback_data", size,
                               TELEGRAM_CALLBACK_BYTES, "a Telegram button's data",
                               "bytes")  # fmt: skip
    return None


def _over(field: str, text: str, mode: str | None, limit: int, what: str) -> TooLong | None:
    if len(text) <= limit:
        return None  # markup only shortens what is counted
    length = shown_length(text, mode)
    if length is not None and length > limit:
        return TooLong(field, length, limit, what)
    return None


def unread_markup(command: SendMessage, who: str) -> tuple[str, str] | None:
    """(field, reason) for a text or caption with a parse mode sent where none is read: its
    tags or markers would reach the customer as they are (a calendar post or a flow turns
    its markup into what the channel shows; a send says what it means)."""
    found = parse_modes(command)
    if not found:
        return None
    where, mode = found[0]
    return f"{where}.parse_mode", (
        f"{who} reads no parse mode ({mode} is Telegram's): send the text as it should show"
    )


def parse_modes(command: SendMessage) -> list[tuple[str, str]]:
    """(where, parse mode) of every text and caption of ``command`` that names one."""
    content = command.content
    if isinstance(content, OutText | OutMedia):
        return [("content", content.parse_mode)] if content.parse_mode else []
    if isinstance(content, OutMediaGroup):
        return [(f"content.items.{i}", item.parse_mode)
                for i, item in enumerate(content.items) if item.parse_mode]  # fmt: skip
    return []
