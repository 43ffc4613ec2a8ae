"""The content calendar's decisions without NATS: overlap per destination, template
rendering with escaping per provider, and a post's status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutText
from switchboard.outbound.attempts import Attempt
from switchboard.outbound.calendar.posts import (
    Destination,
    NewPost,
    Post,
    in_window,
    overlap,
    post_status,
)
from switchboard.outbound.calendar.settle import (
    SETTLE_GRACE,
    change_of,
    due_for_repair,
    next_step,
)
from switchboard.outbound.calendar.templates import (
    MissingVariablesError,
    TemplateText,
    render,
    variables_of,
)
from switchboard.runtime.markup import Format

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
CHANNEL = Destination(channel=Channel.TELEGRAM, account="shop", chat="@news")
GAP = timedelta(minutes=10)


def post(post_id: str, at: datetime, dest: Destination = CHANNEL, **extra: object) -> Post:
    return Post(
        post_id=post_id, workspace_id="demo", destination=dest, at=at,
        content={"kind": "text", "text": "x"}, message_id=f"post-{post_id}-0", **extra,
    )  # fmt: skip


def test_a_post_within_the_gap_to_the_same_destination_overlaps() -> None:
    found = overlap([post("a", T0)], CHANNEL, T0 + timedelta(minutes=9), GAP)
    assert found is not None
    assert found.post_id == "a"


def test_the_gap_is_open_at_its_end_and_counts_both_ways() -> None:
    assert overlap([post("a", T0)], CHANNEL, T0 + GAP, GAP) is None
    assert overlap([post("a", T0)], CHANNEL, T0 - timedelta(minutes=5), GAP) is not None


def test_the_nearest_of_several_overlapping_posts_is_named() -> None:
    posts = [post("far", T0 - timedelta(minutes=8)), post("near", T0 + timedelta(minutes=1))]
    found = overlap(posts, CHANNEL, T0, GAP)
    assert found is not None
    assert found.post_id == "near"


def test_other_destinations_cancelled_posts_and_the_post_itself_do_not_overlap() -> None:
    other_chat = CHANNEL.model_copy(update={"chat": "@other"})
    other_account = CHANNEL.model_copy(update={"account": "shop2"})
    posts = [
        post("chat", T0, other_chat),
        post("account", T0, other_account),
        post("gone", T0, cancelled=True),
        post("self", T0),
    ]
    assert overlap(posts, CHANNEL, T0, GAP, own="self") is None
    assert overlap(posts, CHANNEL, T0, GAP) is not None  # without own, itself clashes


def test_a_zero_gap_never_overlaps() -> None:
    assert overlap([post("a", T0)], CHANNEL, T0, timedelta(0)) is None


def test_telegram_html_values_are_escaped_but_the_template_markup_is_kept() -> None:
    version = TemplateText(body="<b>{{ title }}</b> {{price}}")
    text = render(version, {"title": "<i>x</i> & y", "price": "5"}, Channel.TELEGRAM)
    assert text.text == "<b>&lt;i&gt;x&lt;/i&gt; &amp; y</b> 5"
    assert text.parse_mode == "HTML"


def test_telegram_markdown_v2_values_are_escaped() -> None:
    version = TemplateText(body="*{{ title }}*", format="markdown_v2")
    text = render(version, {"title": "50% off (today!)"}, Channel.TELEGRAM)
    assert text.text == r"*50% off \(today\!\)*"
    assert text.parse_mode == "MarkdownV2"


@pytest.mark.parametrize("channel", [Channel.WHATSAPP, Channel.VIBER])
def test_plain_text_channels_take_values_as_they_are(channel: Channel) -> None:
    text = render(TemplateText(body="Hi {{ name }}"), {"name": "<Ann> & *co*"}, channel)
    assert text.text == "Hi <Ann> & *co*"
    assert text.parse_mode is None


@pytest.mark.parametrize(
    ("fmt", "body", "whatsapp", "viber"),
    [
        # the author's HTML as WhatsApp's markers, the words alone elsewhere; links keep
        # their address; values stay literal (a value's "<b>" is no tag)
        ("html", '<b>{{ title }}</b> &amp; <a href="https://x.test/?a=1&amp;b=2">shop</a>',
         "*<b>Sale</b> & more* & shop (https://x.test/?a=1&b=2)",
         "<b>Sale</b> & more & shop (https://x.test/?a=1&b=2)"),
        ("html", '<i>it</i> <s>was</s> <u>u</u> <span class="tg-spoiler">sp</span> '
                 '<code>x</code>\n<pre><code class="language-py">print(1)</code></pre>',
         "_it_ ~was~ u sp `x`\n```print(1)```", "it was u sp x\nprint(1)"),
        ("html", "<blockquote>one\ntwo</blockquote>\n<a href=\"https://a.b\">https://a.b</a>",
         "> one\n> two\nhttps://a.b", "one\ntwo\nhttps://a.b"),
        ("html", "unclosed <b>bold, x<y", "unclosed *bold, x<y*", "unclosed bold, x<y"),
        ("markdown_v2",
         "*{{ title }}* _it_ __u__ ~st~ ||sp|| `a\\`b` [go](https://x.test/\\)) 1\\.5",
         "*<b>Sale</b> & more* _it_ u ~st~ sp `a`b` go (https://x.test/)) 1.5",
         "<b>Sale</b> & more it u st sp a`b go (https://x.test/)) 1.5"),
        ("markdown_v2", "```python\nprint(1)\n```\n>quote\n[https://a\\.b](https://a.b)\\!",
         "```print(1)```\n> quote\nhttps://a.b!", "print(1)\nquote\nhttps://a.b!"),
        # an address with MarkdownV2's escapes in it is the address without them
        ("markdown_v2", ">one\n>two\nthree [go](https://x.test/a\\.b?c\\=1)",
         "> one\n> two\nthree go (https://x.test/a.b?c=1)",
         "one\ntwo\nthree go (https://x.test/a.b?c=1)"),
    ],
)  # fmt: skip
def test_a_plain_text_destination_gets_the_markup_as_it_shows_never_raw_tags(
    fmt: Format, body: str, whatsapp: str, viber: str
) -> None:
    """A post rendered for WhatsApp sent the template's raw tags before (`<b>Xmas</b>`)."""
    version = TemplateText(body=body, format=fmt)
    values = {"title": "<b>Sale</b> & more"}
    assert render(version, values, Channel.WHATSAPP) == OutText(text=whatsapp)
    assert render(version, values, Channel.VIBER) == OutText(text=viber)
    # a user account sends what a bot sends: the gateway turns the parse mode into entities
    assert render(version, values, Channel.MTPROTO) == render(version, values, Channel.TELEGRAM)


def test_missing_variables_are_named() -> None:
    with pytest.raises(MissingVariablesError) as exc:
        render(TemplateText(body="{{a}} {{ b }} {{c}} {{a}}"), {"b": "1"}, Channel.TELEGRAM)
    assert exc.value.names == ["a", "c"]
    assert variables_of("{{a}} {{ b }} {{a}}") == ["a", "b"]


def test_a_post_needs_a_timezone_and_one_content_source() -> None:
    base = {"destination": CHANNEL.model_dump(), "content": {"kind": "text", "text": "x"}}
    with pytest.raises(ValueError, match="timezone"):
        NewPost.model_validate({**base, "at": "2026-12-05T12:00:00"})
    with pytest.raises(ValueError, match="content or template"):
        NewPost.model_validate({"destination": base["destination"], "at": T0})
    with pytest.raises(ValueError, match="not both"):
        NewPost.model_validate({**base, "at": T0, "template": {"name": "t"}})


def test_status_follows_the_send_record() -> None:
    p = post("a", T0)
    record = Attempt(message_id=p.message_id, workspace_id="demo", channel="telegram",
                     account="shop", recipient="@news")  # fmt: skip
    assert post_status(p, None) == "scheduled"
    assert post_status(p, record) == "scheduled"
    assert post_status(p, record.model_copy(update={"status": "sent"})) == "published"
    assert post_status(p, record.model_copy(update={"status": "failed"})) == "failed"
    assert post_status(p.model_copy(update={"cancelled": True}), record) == "cancelled"


def test_the_window_is_from_inclusive_to_exclusive() -> None:
    p = post("a", T0)
    assert in_window(p, T0, T0 + GAP)
    assert in_window(p, None, None)
    assert not in_window(p, None, T0)
    assert not in_window(p, T0 + GAP, None)


def _record(status: str, error_code: str | None = None) -> Attempt:
    return Attempt.model_validate(
        {"message_id": "post-a-0", "workspace_id": "demo", "channel": "telegram",
         "account": "shop", "recipient": "@news", "status": status, "error_code": error_code}
    )  # fmt: skip


def test_a_new_post_is_queued_and_an_edit_cancels_the_old_send_first() -> None:
    assert next_step("new", None) == "publish"
    assert next_step("edit", None) == "wait"  # the old send is not recorded yet
    assert next_step("edit", _record("queued")) == "cancel_old"
    assert next_step("edit", _record("retrying")) == "cancel_old"
    assert next_step("edit", _record("failed", "cancelled")) == "publish"


def test_a_move_reschedules_the_same_send_once() -> None:
    assert next_step("move", None) == "wait"
    assert next_step("move", _record("queued")) == "reschedule"
    assert next_step("move", _record("queued"), moved=True) == "settled"
    assert next_step("move", _record("sent"), moved=True) == "settled"  # left at its new time
    assert next_step("move", _record("sent")) == "roll_back"  # left at its old time
    # a cancelled send is not an edit's: a move of it is void
    assert next_step("move", _record("failed", "cancelled")) == "roll_back"


def test_an_edit_whose_old_send_left_first_is_rolled_back() -> None:
    assert next_step("edit", _record("sent")) == "roll_back"
    assert next_step("edit", _record("failed", "expired")) == "roll_back"
    old = post("a", T0)
    edited = old.model_copy(
        update={"at": T0 + GAP, "content": {"kind": "text", "text": "new"},
                "message_id": "post-a-1", "edits": 1, "unsettled": True,
                "replaces": old.version()}
    )  # fmt: skip
    assert edited.rolled_back() == old
    assert edited.settled().unsettled is False
    assert edited.settled().replaces is None
    assert edited.settled().message_id == "post-a-1"
    assert change_of(edited) == "edit"
    assert change_of(old.model_copy(update={"unsettled": True, "replaces": old.version()})) == (
        "move"
    )
    assert change_of(old.model_copy(update={"unsettled": True})) == "new"


def test_a_read_repairs_a_change_only_after_the_grace() -> None:
    changed = post("a", T0, unsettled=True, changed_at=T0)
    assert not due_for_repair(changed, T0 + SETTLE_GRACE / 2)  # its request may still run
    assert due_for_repair(changed, T0 + SETTLE_GRACE)
    assert not due_for_repair(post("b", T0, changed_at=T0), T0 + SETTLE_GRACE)
