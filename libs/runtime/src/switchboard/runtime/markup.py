"""Escaping a value for a provider's markup, so text put into a template (a customer's own
words, a variable) can never become markup. Shared by flows and outbound templates.

Telegram messages are sent with a parse mode (``html`` or ``markdown_v2``); the template's
own text is the author's markup and every value put into it is escaped for that markup.
Other channels (user accounts send plain text too) take plain text as it is.
"""

from __future__ import annotations

import html
import re
from typing import Literal

from switchboard.events.catalog.common import Channel

# Telegram Bot API, "MarkdownV2 style": these must be escaped with a backslash anywhere in
# plain text, and so must the backslash itself.
_MARKDOWN_V2_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")

Format = Literal["html", "markdown_v2"]
_PARSE_MODE: dict[Format, str] = {"html": "HTML", "markdown_v2": "MarkdownV2"}


def parse_mode(channel: Channel, fmt: Format = "html") -> str | None:
    """The Bot API ``parse_mode`` a template of this format is sent with (None: plain)."""
    return _PARSE_MODE[fmt] if channel == Channel.TELEGRAM else None


def escape(value: str, channel: Channel, fmt: Format = "html") -> str:
    """Make ``value`` literal text in ``channel``'s markup."""
    mode = parse_mode(channel, fmt)
    if mode == "HTML":
        return html.escape(value, quote=False)
    if mode == "MarkdownV2":
        return _MARKDOWN_V2_SPECIAL.sub(r"\\\1", value)
    return value
