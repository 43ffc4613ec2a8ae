"""Message templates: ``{{ vars.name }}``, ``{{ contact.first_name }}``, ``{{ message.text }}``
filled in with escaping per provider, so a customer's own words can never become markup.

Telegram messages (a bot's, and a user account's as message entities) are sent with a
parse mode the flow chooses (``format``): ``html`` (the default) or ``markdown_v2``. The
template's own text is the author's markup; every value put into it is escaped for it.
Where no parse mode reads it (WhatsApp, Viber), a flow that writes markup has it turned
into what those show; a flow for them alone writes text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from switchboard.events.catalog.common import Channel
from switchboard.runtime.markup import Format, as_shown, escape, escape_for, parse_mode

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
    *,
    markup: bool = True,
) -> tuple[str, str | None]:
    """The text to send and its parse mode. A ``markup`` template (the flow's texts are
    ``fmt``) sent where no parse mode reads it becomes what that channel shows (WhatsApp's
    markers, words, links with their address), never raw tags; otherwise the template is
    the text as written and values go in as they are."""
    if not markup and parse_mode(channel, fmt) is None:
        return render_plain(template, scope), None
    text = _PLACEHOLDER.sub(lambda m: escape_for(lookup(m.group(1), scope), fmt), template)
    return as_shown(text, fmt, channel)


def render_plain(template: str, scope: Mapping[str, Mapping[str, Any]]) -> str:
    """A template filled without markup (values stored in variables)."""
    return _PLACEHOLDER.sub(lambda m: lookup(m.group(1), scope), template)
