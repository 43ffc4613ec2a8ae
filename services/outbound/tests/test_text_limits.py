"""What a send route refuses before queueing, beside schema validation (``fits.unfit``): a
text over its provider's limit (PROTOCOLS.md: Telegram 4096 for a text and 1024 for a
caption after entities parsing, WhatsApp 4096 for a body; what Telegram counts of HTML is
judged by Telethon's own HTML parser), a file by a URL no provider fetches, content a
channel has no form for (each client's own ``unsendable`` check)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from telethon.extensions import html

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import (
    EditMessage,
    Keyboard,
    MediaSource,
    OutMedia,
    OutMediaGroup,
    OutText,
    SendMessage,
)
from switchboard.outbound.fits import unfit
from switchboard.outbound.text_limits import edit_too_long, shown_length, too_long


def send(channel: Channel, content: Any) -> SendMessage:
    return SendMessage(message_id="m", channel=channel, account="a", recipient="1",
                       content=content)  # fmt: skip


def photo(caption: str | None) -> OutMedia:
    return OutMedia(kind="photo", source=MediaSource(file_id="AgAD"), caption=caption)


def shown(n: int) -> str:
    """HTML showing ``n`` characters, longer than ``n`` written out."""
    return "".join(f"<b>{c}</b>" for c in "z" * min(n, 50)) + "z" * max(0, n - 50)


@pytest.mark.parametrize(
    ("channel", "content", "field", "limit"),
    [
        (Channel.TELEGRAM, OutText(text="x" * 4096), None, None),
        (Channel.TELEGRAM, OutText(text="x" * 4097), "content.text", 4096),
        (Channel.TELEGRAM, OutText(text=shown(4096), parse_mode="HTML"), None, None),
        (Channel.TELEGRAM, OutText(text=shown(4097), parse_mode="HTML"), "content.text", 4096),
        (Channel.TELEGRAM, OutText(text="&amp;" * 4096, parse_mode="HTML"), None, None),
        # Markdown's markup needs Telegram's parser to tell: Telegram decides
        (Channel.TELEGRAM, OutText(text="*x*" * 3000, parse_mode="MarkdownV2"), None, None),
        (Channel.TELEGRAM, photo("c" * 1024), None, None),
        (Channel.TELEGRAM, photo("c" * 1025), "content.caption", 1024),
        # a caption with a parse mode is measured by what shows, as a text is
        (Channel.TELEGRAM, photo(shown(1024)).model_copy(update={"parse_mode": "HTML"}),
         None, None),
        (Channel.TELEGRAM, photo(shown(1025)).model_copy(update={"parse_mode": "HTML"}),
         "content.caption", 1024),
        (Channel.TELEGRAM, OutMediaGroup(items=(photo("a"), photo(None), photo("c" * 1025))),
         "content.items.2.caption", 1024),
        (Channel.MTPROTO, OutText(text="x" * 4097), "content.text", 4096),
        # a user account's markup is read by our parser: MarkdownV2 is measured as it shows
        (Channel.MTPROTO, OutText(text="*x*" * 4096, parse_mode="MarkdownV2"), None, None),
        (Channel.MTPROTO, OutText(text="*x*" * 4097, parse_mode="MarkdownV2"),
         "content.text", 4096),
        (Channel.MTPROTO, photo("c" * 2000), None, None),  # Premium accounts take 2048
        (Channel.WHATSAPP, OutText(text="x" * 4097), "content.text", 4096),
        (Channel.WHATSAPP, OutText(text="x" * 4096), None, None),
        (Channel.WHATSAPP, photo("c" * 1024), None, None),
        (Channel.WHATSAPP, photo("c" * 1025), "content.caption", 1024),
        (Channel.VIBER, OutText(text="x" * 7000), None, None),
        (Channel.VIBER, OutText(text="x" * 7001), "content.text", 7000),
        (Channel.VIBER, photo("c" * 512), None, None),
        (Channel.VIBER, photo("c" * 513), "content.caption", 512),
    ],
)  # fmt: skip
def test_texts_over_their_provider_s_limit(
    channel: Channel, content: Any, field: str | None, limit: int | None
) -> None:
    found = too_long(send(channel, content))
    if field is None:
        assert found is None
        return
    assert found is not None
    assert (found.field, found.limit) == (field, limit)
    assert found.length == limit + 1  # type: ignore[operator]
    assert field in found.reason
    assert str(limit) in found.reason


@pytest.mark.parametrize(
    "text",
    [
        "<b>bold</b> &amp; <i>it</i>",
        '<a href="https://example.com/a/very/long/path?q=1">link</a> &lt;3 &#128512;',
        '<pre><code class="language-python">print("x")</code></pre>',
        "<blockquote>quote</blockquote><tg-spoiler>s</tg-spoiler> <u>u</u><s>s</s>",
        "plain, with no markup at all",
    ],
)
def test_html_is_counted_as_telegram_s_parser_shows_it(text: str) -> None:
    visible, _ = html.parse(text)
    assert shown_length(text, "HTML") == len(visible)
    assert shown_length(text, None) == len(text)
    assert shown_length(text, "MarkdownV2") is None


def by_url(url: str) -> OutMedia:
    return OutMedia(kind="photo", source=MediaSource(url=url))


@pytest.mark.parametrize(
    ("cmd", "answer"),
    [
        (send(Channel.TELEGRAM, by_url("https://cdn.example/a.jpg")), None),
        (send(Channel.WHATSAPP, by_url("HTTP://cdn.example/a.jpg")), None),
        (send(Channel.TELEGRAM, by_url("ftp://cdn.example/a.jpg")),
         ("invalid_url", "content.source.url")),
        (send(Channel.VIBER, by_url("file:///etc/passwd")), ("invalid_url", "content.source.url")),
        (send(Channel.TELEGRAM, OutMediaGroup(items=(by_url("https://a/1"), by_url("data:x")))),
         ("invalid_url", "content.items.1.source.url")),
        (send(Channel.TELEGRAM, OutText(text="x" * 4097)), ("too_long", "content.text")),
        (send(Channel.MTPROTO, OutMedia(kind="sticker", source=MediaSource(file_id="C"))),
         ("unsupported_content", "content.kind")),
    ],
)  # fmt: skip
def test_what_does_not_fit_is_a_422_naming_the_field(
    cmd: SendMessage, answer: tuple[str, str] | None
) -> None:
    problem = unfit(cmd)
    if answer is None:
        assert problem is None
        return
    assert problem is not None
    assert problem.status_code == 422
    body = json.loads(problem.body)
    assert (body["code"], body["field"]) == answer


def test_a_telegram_button_s_data_is_counted_in_bytes() -> None:
    """64 bytes, as the Bot API says (aiogram quotes it): 40 Cyrillic letters are 80."""
    from switchboard.events.catalog.outbound import Button, Keyboard

    def with_data(data: str, channel: Channel = Channel.TELEGRAM) -> SendMessage:
        rows = ((Button(text="ok", callback_data="a"), Button(text="b", callback_data=data)),)
        return SendMessage(message_id="m", channel=channel, account="a", recipient="1",
                           content=OutText(text="hi"), keyboard=Keyboard(rows=rows))  # fmt: skip

    assert too_long(with_data("x" * 64)) is None
    found = too_long(with_data("я" * 40))
    assert found is not None
    assert (found.field, found.length, found.limit) == ("keyboard.rows.0.1.callback_data", 80, 64)
    assert "80 bytes" in found.reason
    assert too_long(with_data("я" * 40, Channel.VIBER)) is None


def _buttons(n: int, url: str | None = None) -> Any:
    from switchboard.events.catalog.outbound import Button, Keyboard

    row = tuple(Button(text=f"b{i}", callback_data=f"b{i}") for i in range(n))
    if url:
        row += (Button(text="site", url=url),)
    return Keyboard(type="inline", rows=(row,))


def _template() -> Any:
    from switchboard.events.catalog.outbound import OutTemplate

    return OutTemplate(name="welcome", language="en")


def _album() -> OutMediaGroup:
    return OutMediaGroup(items=(photo(None), photo(None)))


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (send(Channel.TELEGRAM, _template()), "content.kind"),
        (send(Channel.TELEGRAM, _album()).model_copy(update={"keyboard": _buttons(1)}),
         "keyboard"),
        (send(Channel.TELEGRAM, OutMediaGroup(items=(
            photo(None), OutMedia(kind="voice", source=MediaSource(file_id="V")))),
         ), "content.items.1.kind"),
        (send(Channel.TELEGRAM, OutText(text="hi")).model_copy(update={"reply_to": "abc"}),
         "reply_to"),
        (send(Channel.WHATSAPP, OutText(text="x")).model_copy(update={"keyboard": _buttons(11)}),
         "keyboard"),
        (send(Channel.WHATSAPP, OutText(text="x")).model_copy(
            update={"keyboard": _buttons(1, url="https://b.test")}), "keyboard"),
        (send(Channel.WHATSAPP, photo(None)).model_copy(update={"keyboard": _buttons(2)}),
         "keyboard"),
        (send(Channel.WHATSAPP, photo("cap")).model_copy(update={"keyboard": _buttons(5)}),
         "keyboard"),
        (send(Channel.WHATSAPP, _album()), "content.kind"),
        (send(Channel.WHATSAPP, _template()).model_copy(update={"keyboard": _buttons(1)}),
         "keyboard"),
        (send(Channel.VIBER, _template()), "content.kind"),
        (send(Channel.VIBER, _album()), "content.kind"),
        (send(Channel.VIBER, OutMedia(kind="document", source=MediaSource(file_id="D"))),
         "content.kind"),
        (send(Channel.VIBER, OutText(text="x")).model_copy(update={"keyboard": _buttons(25)}),
         "keyboard"),
        (send(Channel.VIBER, OutText(text="x")).model_copy(update={"keyboard": _buttons(
            1, url="https://b.test/" + "u" * 31_000)}), "keyboard"),
        (send(Channel.VIBER, OutText(text="😀" * 7000)).model_copy(update={"keyboard": _buttons(
            1, url="https://b.test/" + "u" * 3000)}), "keyboard"),
        # a parse mode where none is read: the tags reached the customer raw before
        (send(Channel.WHATSAPP, OutText(text="<b>hi</b>", parse_mode="HTML")),
         "content.parse_mode"),
        (send(Channel.VIBER, OutText(text="*hi*", parse_mode="MarkdownV2")),
         "content.parse_mode"),
        (send(Channel.WHATSAPP, photo("<b>hi</b>").model_copy(update={"parse_mode": "HTML"})),
         "content.parse_mode"),
        (send(Channel.MTPROTO, OutMedia(kind="photo", source=MediaSource(url="https://a/p.jpg"),
                                        caption="*hi*", parse_mode="Markdown")),
         "content.parse_mode"),
        (send(Channel.MTPROTO, OutText(text="*hi*", parse_mode="Markdown")),
         "content.parse_mode"),
        (send(Channel.MTPROTO, OutText(text="<b> </b>", parse_mode="HTML")), "content.text"),
    ],
    ids=["tg-template", "tg-album-keyboard", "tg-album-voice", "tg-reply-to", "wa-11-buttons",
         "wa-url-and-reply", "wa-media-buttons-no-caption", "wa-list-with-media", "wa-album",
         "wa-template-keyboard", "viber-template", "viber-album", "viber-document-by-id",
         "viber-25-buttons", "viber-over-30-kb", "viber-emoji-and-keyboard-over-30-kb",
         "wa-parse-mode", "viber-parse-mode", "wa-caption-parse-mode",
         "mtproto-caption-legacy-markdown", "mtproto-legacy-markdown",
         "mtproto-nothing-shown"],
)  # fmt: skip
def test_what_a_channel_has_no_form_for_is_a_422_naming_the_field(
    cmd: SendMessage, field: str
) -> None:
    """Each of these was a 202, then a ``delivery.failed`` (``<provider>_unsupported``) from
    the client, which refuses it without a call: the API asks the client's own check first.
    The client tests (test_telegram_client, test_whatsapp_client, test_viber_client) show the
    same shapes refused on the bus."""
    problem = unfit(cmd)
    assert problem is not None
    body = json.loads(problem.body)
    assert (problem.status_code, body["code"], body["field"]) == (
        422,
        "unsupported_content",
        field,
    )


@pytest.mark.parametrize(
    "cmd",
    [
        send(Channel.TELEGRAM, _album()),
        send(Channel.TELEGRAM, OutText(text="x")).model_copy(update={"keyboard": _buttons(20)}),
        send(Channel.WHATSAPP, OutText(text="x")).model_copy(update={"keyboard": _buttons(10)}),
        send(Channel.WHATSAPP, photo("cap")).model_copy(update={"keyboard": _buttons(3)}),
        send(Channel.WHATSAPP, _template()),
        send(Channel.VIBER, OutMedia(kind="sticker", source=MediaSource(file_id="40100"))),
        send(Channel.TELEGRAM, OutText(text="hi")).model_copy(update={"reply_to": "-42"}),
        send(Channel.VIBER, OutText(text="😀" * 7000)).model_copy(
            update={"keyboard": _buttons(24)}),
        send(Channel.MTPROTO, OutText(text="<b>hi</b>", parse_mode="HTML")),
        send(Channel.MTPROTO, OutText(text="*hi* \\.", parse_mode="MarkdownV2")),
    ],
    ids=["tg-album", "tg-20-buttons", "wa-list", "wa-media-buttons", "wa-template",
         "viber-sticker", "tg-reply-to", "viber-7000-emoji-24-buttons", "mtproto-html",
         "mtproto-markdown-v2"],
)  # fmt: skip
def test_what_a_channel_carries_fits(cmd: SendMessage) -> None:
    assert unfit(cmd) is None


def test_a_whatsapp_text_with_buttons_is_an_interactive_body_of_at_most_1024() -> None:
    """With buttons the text goes as ``interactive.body.text``, which takes 1024 characters
    (the fake answers error 100 over it): a 2,000-character text was a 202 and a failure."""
    plain = send(Channel.WHATSAPP, OutText(text="x" * 2000))
    assert too_long(plain) is None
    with_buttons = plain.model_copy(update={"keyboard": _buttons(2)})
    found = too_long(with_buttons)
    assert found is not None
    assert (found.field, found.length, found.limit) == ("content.text", 2000, 1024)
    removed = plain.model_copy(update={"keyboard": Keyboard(type="remove")})
    assert too_long(removed) is None
    fits = send(Channel.WHATSAPP, OutText(text="x" * 1024)).model_copy(
        update={"keyboard": _buttons(2)}
    )
    assert too_long(fits) is None


@pytest.mark.parametrize(
    ("edit", "field", "limit"),
    [
        ({"text": "x" * 4097}, "text", 4096),
        ({"text": shown(4097), "parse_mode": "HTML"}, "text", 4096),
        ({"caption": "c" * 1025}, "caption", 1024),
        ({"keyboard": {"type": "inline", "rows": [[{"text": "b", "callback_data": "я" * 40}]]}},
         "keyboard.rows.0.0.callback_data", 64),
    ],
    ids=["text", "html-text", "caption", "button-data"],
)  # fmt: skip
def test_an_edit_over_telegram_s_limits_is_named(
    edit: dict[str, Any], field: str, limit: int
) -> None:
    """An edit's text, caption and buttons have a send's limits; each was a 202 and an
    ``interaction_failed`` ("message is too long") from Telegram."""
    cmd = EditMessage.model_validate(
        {"request_id": "r", "channel": "telegram", "account": "a", "message_id": "m", **edit}
    )
    found = edit_too_long(cmd)
    assert found is not None
    assert (found.field, found.limit) == (field, limit)
    shorter = {k: v[:limit] if isinstance(v, str) and k != "parse_mode" else v
               for k, v in edit.items() if k != "keyboard"}  # fmt: skip
    if shorter:
        ok = EditMessage.model_validate(
            {
                "request_id": "r",
                "channel": "telegram",
                "account": "a",
                "message_id": "m",
                **shorter,
            }
        )
        assert edit_too_long(ok) is None
