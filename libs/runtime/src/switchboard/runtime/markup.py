"""Escaping a value for a provider's markup, so text put into a template (a customer's own
words, a variable) can never become markup. Shared by flows and outbound templates.

Telegram messages are sent with a parse mode (``html`` or ``markdown_v2``): a bot's as the
Bot API's ``parse_mode``, a user account's as the message entities it means (``spans``).
The template's own text is the author's markup and every value put into it is escaped for
that markup. Other channels take plain text: the author's markup becomes what they show.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Literal, Protocol

from switchboard.events.catalog.common import Channel

# Telegram Bot API, "MarkdownV2 style": these must be escaped with a backslash anywhere in
# plain text, and so must the backslash itself.
_MARKDOWN_V2_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")

Format = Literal["html", "markdown_v2"]
_PARSE_MODE: dict[Format, str] = {"html": "HTML", "markdown_v2": "MarkdownV2"}
# The format a Bot API parse mode names (legacy Markdown has none: a bot's alone).
FORMAT_OF: dict[str, Format] = {mode: fmt for fmt, mode in _PARSE_MODE.items()}


# Where a text is sent with its parse mode: Telegram bots, and user accounts, whose gateway
# sends what the parse mode means as message entities (``spans``).
_READS_MARKUP = (Channel.TELEGRAM, Channel.MTPROTO)


def parse_mode(channel: Channel, fmt: Format = "html") -> str | None:
    """The Bot API ``parse_mode`` a template of this format is sent with (None: plain)."""
    return _PARSE_MODE[fmt] if channel in _READS_MARKUP else None


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

    def start(self, kind: str, value: str | None = None) -> None:
        if kind == "code" and self.opened("pre"):
            kind = "code-in-pre"  # <pre><code class="language-x">: one block, not two
        self.out.append(self.markers.get(kind, ""))
        self.open.append((kind, len(self.out), value if kind == "link" else None))

    def opened(self, kind: str) -> bool:
        return any(k == kind for k, _, _ in self.open)

    def end(self, kind: str, value: str | None = None) -> None:
        """Close the innermost open ``kind`` (a link's address may come with its end)."""
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i][0] in (kind, "code-in-pre" if kind == "code" else kind):
                opened, at, began_with = self.open.pop(i)
                href = value or began_with
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


# -- the author's markup as a user account sends it ----------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """One formatted stretch of a text, as MTProto's ``MessageEntity`` names it: ``kind``
    (bold, italic, underline, strike, code, pre, link, spoiler, quote, emoji), where it
    starts and how long it is in UTF-16 code units (Telegram's count), and the link's
    address, the code block's language or the custom emoji's id in ``value``."""

    kind: str
    offset: int
    length: int
    value: str | None = None


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _Spans:
    """Writes the words alone and records every span over them: what Telegram's own
    parser makes of a Bot API text, for a user account, which sends entities instead."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.at = 0  # UTF-16 length of ``out``
        self.open: list[list[Any]] = []  # [kind, offset, value]
        self.spans: list[Span] = []

    def text(self, data: str) -> None:
        self.out.append(data)
        self.at += _utf16(data)

    def start(self, kind: str, value: str | None = None) -> None:
        if kind == "code" and self.opened("pre"):
            pre = next(o for o in reversed(self.open) if o[0] == "pre")
            pre[2] = pre[2] or _language(value)
            kind = "code-in-pre"  # <pre><code class="language-x">: one block, not two
        self.open.append([kind, self.at, value])

    def opened(self, kind: str) -> bool:
        return any(o[0] == kind for o in self.open)

    def end(self, kind: str, value: str | None = None) -> None:
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i][0] in (kind, "code-in-pre" if kind == "code" else kind):
                opened, offset, began_with = self.open.pop(i)
                break
        else:
            return
        if opened != "code-in-pre" and self.at > offset:  # an empty span is no entity
            value = value or began_with
            self.spans.append(Span(opened, offset, self.at - offset, value))

    def result(self) -> tuple[str, tuple[Span, ...]]:
        while self.open:
            self.end(self.open[-1][0])
        return "".join(self.out), tuple(sorted(self.spans, key=lambda s: (s.offset, -s.length)))


def _language(css_class: str | None) -> str | None:
    """``language-python`` of ``<code class="language-python">``."""
    for name in (css_class or "").split():
        if name.startswith("language-"):
            return name.removeprefix("language-") or None
    return None


class _Writer(Protocol):
    def text(self, data: str) -> None: ...
    def start(self, kind: str, value: str | None = None) -> None: ...
    def end(self, kind: str, value: str | None = None) -> None: ...
    def opened(self, kind: str) -> bool: ...


# -- reading the author's markup ----------------------------------------------------------


class _Html(HTMLParser):
    """The Bot API's HTML style, read into a writer."""

    def __init__(self, writer: _Writer) -> None:
        super().__init__(convert_charrefs=True)
        self.writer = writer

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "span" and "tg-spoiler" in (values.get("class") or "").split():
            tag = "tg-spoiler"
        if tag == "br":
            self.writer.text("\n")
        elif tag in _HTML_KINDS:
            kind = _HTML_KINDS[tag]
            value = {"link": "href", "code": "class", "emoji": "emoji-id"}.get(kind)
            self.writer.start(kind, values.get(value) if value else None)

    def handle_endtag(self, tag: str) -> None:
        kind = _HTML_KINDS.get(tag) or ("spoiler" if tag == "span" else None)
        if kind is not None:
            self.writer.end(kind)

    def handle_data(self, data: str) -> None:
        self.writer.text(data)


_MD_TOGGLES = (("||", "spoiler"), ("__", "underline"), ("*", "bold"), ("_", "italic"),
               ("~", "strike"))  # fmt: skip


def _until(text: str, start: int, delimiter: str) -> int:
    """Where the first ``delimiter`` not escaped by a backslash is (the end if none)."""
    i = start
    while i < len(text) and not text.startswith(delimiter, i):
        i += 2 if text[i] == "\\" else 1
    return min(i, len(text))


def _markdown_v2(text: str, writer: _Writer) -> None:
    """Telegram's MarkdownV2 (entities, backslash escapes) read as the Bot API reads it."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            writer.text(text[i + 1])
            i += 2
        elif text.startswith("```", i):
            end = _until(text, i + 3, "```")
            body = text[i + 3 : end].removesuffix("\n")
            first, newline, rest = body.partition("\n")
            language = None
            if newline and first and " " not in first:
                body, language = rest, first  # ```python\n...: the first line names it
            writer.start("pre", language)
            writer.text(re.sub(r"\\([`\\])", r"\1", body))
            writer.end("pre")
            i = end + 3
        elif c == "`":
            end = _until(text, i + 1, "`")
            writer.start("code")
            writer.text(re.sub(r"\\([`\\])", r"\1", text[i + 1 : end]))
            writer.end("code")
            i = end + 1
        elif c == "[":
            writer.start("link")
            i += 1
        elif c == "]" and writer.opened("link") and text.startswith("(", i + 1):
            end = _until(text, i + 2, ")")
            # "any character with code 1-126 can be escaped anywhere" (the Bot API): an
            # address written with the text's own escapes (`a\.b`) means `a.b`
            writer.end("link", re.sub(r"\\([\x01-\x7e])", r"\1", text[i + 2 : end]))
            i = end + 1
        elif c == ">" and (i == 0 or text[i - 1] == "\n"):
            if not writer.opened("quote"):  # consecutive quoted lines are one quote
                writer.start("quote")
            i += 1
        elif c == "\n" and writer.opened("quote") and not text.startswith(">", i + 1):
            writer.end("quote")
            writer.text(c)
            i += 1
        else:
            for token, kind in _MD_TOGGLES:
                if text.startswith(token, i):
                    if writer.opened(kind):
                        writer.end(kind)
                    else:
                        writer.start(kind)
                    i += len(token)
                    break
            else:
                writer.text(c)
                i += 1


def _read(text: str, fmt: Format, writer: _Writer) -> None:
    if fmt == "markdown_v2":
        _markdown_v2(text, writer)
        return
    parser = _Html(writer)
    parser.feed(text)
    parser.close()


def spans(text: str, fmt: Format) -> tuple[str, tuple[Span, ...]]:
    """A Bot API ``fmt`` text as MTProto sends it: the words a reader sees and the spans
    over them (a user account has no parse mode; its client sends entities)."""
    writer = _Spans()
    _read(text, fmt, writer)
    return writer.result()


def words(text: str, parse_mode: str | None) -> str:
    """What a reader sees of ``text`` sent with a Bot API ``parse_mode`` (legacy Markdown,
    which no one here reads, and no parse mode: the text as it is)."""
    fmt = FORMAT_OF.get(parse_mode or "")
    return text if fmt is None else spans(text, fmt)[0]


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
    writer = _Plain(channel)
    _read(text, fmt, writer)
    return writer.result()
