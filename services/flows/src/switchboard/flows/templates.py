"""Message templates: ``{{ vars.name }}``, ``{{ contact.first_name }}``, ``{{ message.text }}``
filled in with escaping per provider, so a customer's own words can never become markup.

Telegram messages are sent with ``parse_mode=HTML``: the template's own text is the author's
HTML, every value put into it is escaped. Other channels take plain text as it is.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from switchboard.events.catalog.common import Channel

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

PARSE_MODE: dict[Channel, str | None] = {Channel.TELEGRAM: "HTML"}


def escape(value: str, channel: Channel) -> str:
    """Make ``value`` literal text in ``channel``'s markup."""
    if PARSE_MODE.get(channel) == "HTML":
        return html.escape(value, quote=False)
    return value


def lookup(name: str, scope: Mapping[str, Mapping[str, Any]]) -> str:
    """``vars.x`` / ``contact.first_name`` / ``message.text`` -> its text ('' if unset)."""
    group, _, key = name.partition(".")
    value = scope.get(group, {}).get(key)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(
    template: str, scope: Mapping[str, Mapping[str, Any]], channel: Channel
) -> tuple[str, str | None]:
    """The text to send and its parse mode."""
    text = _PLACEHOLDER.sub(lambda m: escape(lookup(m.group(1), scope), channel), template)
    return text, PARSE_MODE.get(channel)


def render_plain(template: str, scope: Mapping[str, Mapping[str, Any]]) -> str:
    """A template filled without markup (values stored in variables)."""
    return _PLACEHOLDER.sub(lambda m: lookup(m.group(1), scope), template)
