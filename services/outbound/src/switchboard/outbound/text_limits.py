"""The providers' limits on a message's text, checked before a send is queued: a text the
provider is bound to refuse is a 422 naming the field at once, not a ``delivery.failed``
("message is too long") after the call.

Telegram (bots and user accounts) takes 1-4096 characters of text and 0-1024 of a bot's
caption, counted after entities parsing (PROTOCOLS.md; the Bot API's own words, quoted in
aiogram): with ``parse_mode`` HTML the tags do not count and an entity is one character,
so what is measured is the text a reader sees. Markdown modes are not measured: their
markup cannot be told from the text without Telegram's own parser (a link's URL is not
shown, an escaped ``\\.`` is one character), and refusing a text Telegram would take is
worse than a refusal from Telegram. A user account's caption is not measured either
(Premium accounts take 2048). WhatsApp takes a text body of at most 4096 characters
(PROTOCOLS.md; pywa). Viber takes a text of at most 7000 characters and a picture's text of
at most 512 (Viber's REST Bot API reference, as the sandbox's fake enforces them: status 3
``badData`` after the call). Characters are code points, never more than Telegram's UTF-16
count.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutMedia, OutMediaGroup, OutText, SendMessage

TELEGRAM_TEXT, TELEGRAM_CAPTION, WHATSAPP_TEXT = 4096, 1024, 4096
VIBER_TEXT, VIBER_CAPTION = 7000, 512
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
    # captions go without a parse mode (providers/telegram.py): every character counts
    return [(f"{where}.caption", item.caption, None, True) for where, item in items
            if item.caption is not None]  # fmt: skip


def _limit(channel: Channel, caption: bool) -> tuple[int, str] | None:
    if channel is Channel.TELEGRAM:
        if caption:
            return TELEGRAM_CAPTION, "a Telegram caption"
        return TELEGRAM_TEXT, "a Telegram text"
    if channel is Channel.MTPROTO and not caption:
        return TELEGRAM_TEXT, "a Telegram text"
    if channel is Channel.WHATSAPP and not caption:
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
    if cmd.channel is Channel.TELEGRAM and cmd.keyboard is not None:
        for i, row in enumerate(cmd.keyboard.rows):
            for j, button in enumerate(row):
                size = len((button.callback_data or "").encode())
                if size > TELEGRAM_CALLBACK_BYTES:
                    return TooLong(f"keyboard.rows.{i}.{j}.callback_data", size,
                                   TELEGRAM_CALLBACK_BYTES, "a Telegram button's data",
                                   "bytes")  # fmt: skip
    for field, text, mode, caption in _texts(cmd):
        limit = _limit(cmd.channel, caption)
        if limit is None or len(text) <= limit[0]:
            continue  # markup only shortens what is counted
        length = shown_length(text, mode)
        if length is not None and length > limit[0]:
            return TooLong(field, length, limit[0], limit[1])
    return None
