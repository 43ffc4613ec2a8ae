"""Telegram's HTML parse mode as the Bot API reads it (core.telegram.org/bots/api#html-style):
only its own tags (a ``span`` only as ``class="tg-spoiler"``), each closed in order, and of
the named entities only ``&lt;``, ``&gt;``, ``&amp;`` and ``&quot;`` (numeric ones all).
Anything else Telegram refuses with "Bad Request: can't parse entities", after the send was
queued; checking first makes it a 422 naming the field (and, on the bus, a failure without
a call). Bare ``<`` and ``&`` that start no tag or entity are left to Telegram: what it does
with each is not documented beyond "must be replaced", and refusing what it might take
would be worse than a provider's answer.
"""

from __future__ import annotations

from html.parser import HTMLParser

TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
        "a", "tg-emoji", "code", "pre", "blockquote",
    }
)  # fmt: skip
ENTITIES = frozenset({"lt", "gt", "amp", "quot"})


class _Checker(HTMLParser):
    """Reads the text, keeping the first problem Telegram's parser would refuse."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.problem: str | None = None

    def _fail(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            self._fail(f'unsupported start tag "{tag}"')
        elif tag == "span" and dict(attrs).get("class") != "tg-spoiler":
            self._fail('a span must be <span class="tg-spoiler">')
        self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._fail(f'unsupported start tag "{tag}"')  # <br/> and the like: no such tags

    def handle_endtag(self, tag: str) -> None:
        if not self.open:
            self._fail(f'unmatched end tag "</{tag}>"')
        elif self.open[-1] != tag:
            self._fail(f'unmatched end tag: expected "</{self.open[-1]}>", found "</{tag}>"')
        else:
            self.open.pop()

    def handle_entityref(self, name: str) -> None:
        if name not in ENTITIES:
            self._fail(f'unsupported HTML entity "&{name};" (only &lt; &gt; &amp; &quot;)')


def html_problem(text: str) -> str | None:
    """Why Telegram cannot parse ``text`` in its HTML parse mode; None when it can."""
    checker = _Checker()
    checker.feed(text)
    checker.close()
    if checker.problem is None and checker.open:
        checker._fail(f'can\'t find end tag corresponding to start tag "{checker.open[-1]}"')
    return checker.problem
