"""Escaping a value for a provider's markup, so text put into a template (a customer's own
words, a variable) can never become markup. Shared by flows and outbound templates.

Telegram messages are sent with a parse mode (``html`` or ``markdown_v2``); the template's
own text is the author's markup and every value put into it is escaped for that markup.
Other channels (user accounts send plain text too) take plain text as it is.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
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
    return value if parse_mode(channel, fmt) is None else escape_for(value, fmt)


def escape_for(value: str, fmt: Format) -> str:
    """Make ``value`` literal text in ``fmt``."""
    if fmt == "html":
        return html.escape(value, quote=False)
    return _MARKDOWN_V2_SPECIAL.sub(r"\\\1", value)


# -- the author's markup for a channel that takes none ------------------------------------

# What each kind of span becomes where the message is plain text: WhatsApp has markers of
# its own for some (its documented formatting); elsewhere only the words are kept.
_WHATSAPP_MARKERS = {"bold": "*", "italic": "_", "strike": "~", "code": "`", "pre": "```"}
_HTML_KINDS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "s": "strike",
    "strike": "strike", "del": "strike", "u": "underline", "ins": "underline",
    "code": "code", "pre": "pre", "a": "link", "tg-spoiler": "spoiler",
    "blockquote": "quote", "tg-emoji": "emoji",
}  # fmt: skip


class _Plain:
    """Writes spans with a channel's markers; links keep their address after the words."""

    def __init__(self, channel: Channel) -> None:
        self.markers = _WHATSAPP_MARKERS if channel == Channel.WHATSAPP else {}
        self.quote = "> " if channel == Channel.WHATSAPP else ""
        self.out: list[str] = []
        self.open: list[tuple[str, int, str | None]] = []  # kind, where it began, link href

    def text(self, data: str) -> None:
        self.out.append(data)

    def start(self, kind: str, href: str | None = None) -> None:
        if kind == "code" and self.opened("pre"):
            kind = "code-in-pre"  # <pre><code class="language-x">: one block, not two
        self.out.append(self.markers.get(kind, ""))
        self.open.append((kind, len(self.out), href))

    def opened(self, kind: str) -> bool:
        return any(k == kind for k, _, _ in self.open)

    def end(self, kind: str, href: str | None = None) -> None:
        """Close the innermost open ``kind`` (a link's address may come with its end)."""
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i][0] in (kind, "code-in-pre" if kind == "code" else kind):
                opened, at, began_with = self.open.pop(i)
                href = href or began_with
                break
        else:
            return  # a closing tag never opened: nothing to close
        if opened == "quote" and self.quote:
            inner = "".join(self.out[at:]).strip("\n")
            del self.out[at:]
            self.out.append("\n".join(self.quote + line for line in inner.split("\n")))
            return
        words = "".join(self.out[at:])
        self.out.append(self.markers.get(opened, ""))
        if opened == "link" and href and href.strip() != words.strip():
            self.out.append(f" ({href.strip()})")

    def result(self) -> str:
        while self.open:
            self.end(self.open[-1][0])
        return "".join(self.out)


class _HtmlToPlain(HTMLParser):
    def __init__(self, channel: Channel) -> None:
        super().__init__(convert_charrefs=True)
        self.plain = _Plain(channel)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "span" and "tg-spoiler" in (values.get("class") or "").split():
            tag = "tg-spoiler"
        if tag == "br":
            self.plain.text("\n")
        elif tag in _HTML_KINDS:
            self.plain.start(_HTML_KINDS[tag], values.get("href"))

    def handle_endtag(self, tag: str) -> None:
        kind = _HTML_KINDS.get(tag) or ("spoiler" if tag == "span" else None)
        if kind is not None:
            self.plain.end(kind)

    def handle_data(self, data: str) -> None:
        self.plain.text(data)


_MD_TOGGLES = (("||", "spoiler"), ("__", "underline"), ("*", "bold"), ("_", "italic"),
               ("~", "strike"))  # fmt: skip


def _until(text: str, start: int, delimiter: str) -> int:
    """Where the first ``delimiter`` not escaped by a backslash is (the end if none)."""
    i = start
    while i < len(text) and not text.startswith(delimiter, i):
        i += 2 if text[i] == "\\" else 1
    return min(i, len(text))


def _markdown_v2_to_plain(text: str, channel: Channel) -> str:
    """Telegram's MarkdownV2 (entities, backslash escapes) read as the Bot API reads it."""
    plain, i, n = _Plain(channel), 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            plain.text(text[i + 1])
            i += 2
        elif text.startswith("```", i):
            end = _until(text, i + 3, "```")
            body = text[i + 3 : end].removesuffix("\n")
            first, newline, rest = body.partition("\n")
            if newline and first and " " not in first:
                body = rest  # ```python\n...: the first line names the language
            plain.start("pre")
            plain.text(re.sub(r"\\([`\\])", r"\1", body))
            plain.end("pre")
            i = end + 3
        elif c == "`":
            end = _until(text, i + 1, "`")
            plain.start("code")
            plain.text(re.sub(r"\\([`\\])", r"\1", text[i + 1 : end]))
            plain.end("code")
            i = end + 1
        elif c == "[":
            plain.start("link")
            i += 1
        elif c == "]" and plain.opened("link") and text.startswith("(", i + 1):
            end = _until(text, i + 2, ")")
            plain.end("link", href=re.sub(r"\\([)\\])", r"\1", text[i + 2 : end]))
            i = end + 1
        elif c == ">" and (i == 0 or text[i - 1] == "\n"):
            plain.text(plain.quote)
            i += 1
        else:
            for token, kind in _MD_TOGGLES:
                if text.startswith(token, i):
                    if plain.opened(kind):
                        plain.end(kind)
                    else:
                        plain.start(kind)
                    i += len(token)
                    break
            else:
                plain.text(c)
                i += 1
    return plain.result()


def as_shown(text: str, fmt: Format, channel: Channel) -> tuple[str, str | None]:
    """A text in ``fmt`` markup (values in it escaped for it) as ``channel`` is sent it:
    with its parse mode on Telegram, as :func:`to_plain` where none is read."""
    mode = parse_mode(channel, fmt)
    return (text, mode) if mode is not None else (to_plain(text, fmt, channel), None)


def to_plain(text: str, fmt: Format, channel: Channel) -> str:
    """The author's ``fmt`` markup (values in it already escaped for it) as the text a
    channel without a parse mode shows: WhatsApp's own markers for bold, italic,
    strikethrough and code, elsewhere the words alone; a link keeps its address after
    its words ("shop (https://...)"), which a plain text cannot hide."""
    if fmt == "markdown_v2":
        return _markdown_v2_to_plain(text, channel)
    parser = _HtmlToPlain(channel)
    parser.feed(text)
    parser.close()
    return parser.plain.result()
