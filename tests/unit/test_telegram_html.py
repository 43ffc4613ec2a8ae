"""Telegram's HTML parse mode as its Bot API documents it (bots/api#html-style): what it
parses, and what it refuses with "can't parse entities" after the send was queued."""

from __future__ import annotations

import pytest

from switchboard.runtime.telegram_html import html_problem


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "<b>bold</b>, <strong>bold</strong>, <i>it</i>, <em>it</em>, <u>u</u>, <ins>u</ins>",
        "<s>s</s>, <strike>s</strike>, <del>s</del>",
        '<span class="tg-spoiler">spoiler</span>, <tg-spoiler>spoiler</tg-spoiler>',
        "<b>bold <i>italic bold <s>and struck</s></i></b>",
        '<a href="http://www.example.com/">inline URL</a>',
        '<a href="tg://user?id=123456789">mention</a>',
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
        "<code>code</code>",
        '<pre><code class="language-python">print("&lt;b&gt;")</code></pre>',
        "<blockquote>quote</blockquote>",
        "<blockquote expandable>long quote</blockquote>",
        "&lt;tag&gt; &amp; &quot;quoted&quot; &#128512; &#x1F600;",
        "<B>upper-case tags are tags</B>",
    ],
)
def test_what_telegram_parses(text: str) -> None:
    assert html_problem(text) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<b>oops", 'can\'t find end tag corresponding to start tag "b"'),
        ("<blink>x</blink>", 'unsupported start tag "blink"'),
        ("line<br>break", 'unsupported start tag "br"'),
        ("line<br/>break", 'unsupported start tag "br"'),
        ("<p>para</p>", 'unsupported start tag "p"'),
        ("<span>x</span>", 'a span must be <span class="tg-spoiler">'),
        ("<b><i>x</b></i>", 'unmatched end tag: expected "</i>", found "</b>"'),
        ("x</b>", 'unmatched end tag "</b>"'),
        ("a&nbsp;b", 'unsupported HTML entity "&nbsp;"'),
    ],
)
def test_what_telegram_refuses(text: str, problem: str) -> None:
    found = html_problem(text)
    assert found is not None
    assert found.startswith(problem), found


def test_bare_characters_are_left_to_telegram() -> None:
    """Bare ``<`` and ``&`` must be escaped, the docs say, but not what Telegram does with
    them: refusing what it might take would be worse than its own answer."""
    assert html_problem("a < b and AT&T") is None
