"""Message templates: ``{{ vars.name }}``, ``{{ contact.first_name }}``, ``{{ message.text }}``
filled in with escaping per provider, so a customer's own words can never become markup.

Telegram messages are sent with a parse mode the flow chooses (``format``): ``html`` (the
default) or ``markdown_v2``. The template's own text is the author's markup; every value put
into it is escaped for that markup. Other channels take plain text as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from switchboard.events.catalog.common import Channel
from switchboard.runtime.markup import Format, escape, parse_mode

__all__ = ["Format", "escape", "lookup", "parse_mode", "render", "render_plain"]

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


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
    template: str,
    scope: Mapping[str, Mapping[str, Any]],
    channel: Channel,
    fmt: Format = "html",
) -> tuple[str, str | None]:
    """The text to send and its parse mode."""
    text = _PLACEHOLDER.sub(lambda m: escape(lookup(m.group(1), scope), channel, fmt), template)
    return text, parse_mode(channel, fmt)


def render_plain(template: str, scope: Mapping[str, Mapping[str, Any]]) -> str:
    """A template filled without markup (values stored in variables)."""
    return _PLACEHOLDER.sub(lambda m: lookup(m.group(1), scope), template)
