"""Table tests of the pure decisions: steps, validation of answers, branches, timers, and the
conversation-level plan (which run takes an input, replacement, redelivery)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.flows import RunRecorded, RunStatus
from switchboard.flows.demo import DEMO_FLOW
from switchboard.flows.document import AskStep, Case, FlowDocument, validate
from switchboard.flows.engine import Decision, Input, RunState, decide, holds, new_run
from switchboard.flows.engine import validate_answer as check
from switchboard.flows.sessions import plan
from switchboard.flows.templates import render
from switchboard.flows.triggers import Published, command_start, other_start, parse_command

from .flows_support import CONV, T0, flow, start


def then(state: RunState, doc: FlowDocument, kind: Any, **kw: Any) -> Decision | None:
    return decide(state, doc, Input(kind, "i1", T0 + timedelta(seconds=1), **kw))


def texts(decision: Decision) -> list[str]:
    return [e.data["text"] for e in decision.effects if e.kind == "send"]


@pytest.mark.parametrize(
    ("validate_as", "answer", "expected"),
    [
        ("text", "  Ada ", "Ada"),
        ("text", "   ", None),
        ("number", "3,5", 3.5),
        ("number", "12 000", 12000.0),
        ("number", "twelve", None),
        ("number", "nan", None),
        ("email", "Ada@Example.COM", "Ada@example.com"),
        ("email", "ada@", None),
        ("phone", "+44 20 7946 0958", "+442079460958"),
        ("phone", "0044 20 7946 0958", "+442079460958"),
        ("phone", "12345", None),
        ("phone", "call me", None),
        ("choice", "LARGE", "large"),
        ("choice", "huge", None),
    ],
)
def test_answers_are_validated_and_normalized(
    validate_as: str, answer: str, expected: object
) -> None:
    step = AskStep.model_validate(
        {"type": "ask", "text": "?", "var": "v", "validate": validate_as, "choices": ["large"]}
    )
    assert check(step, answer) == expected


@pytest.mark.parametrize(
    ("when", "variables", "tags", "text", "expected"),
    [
        ({"type": "var", "name": "n", "op": "eq", "value": 3}, {"n": "3"}, (), None, True),
        ({"type": "var", "name": "n", "op": "gt", "value": 2}, {"n": 3.0}, (), None, True),
        ({"type": "var", "name": "n", "op": "lt", "value": 2}, {"n": "x"}, (), None, False),
        ({"type": "var", "name": "n", "op": "exists"}, {}, (), None, False),
        ({"type": "var", "name": "n", "op": "missing"}, {}, (), None, True),
        ({"type": "var", "name": "n", "op": "ne", "value": "a"}, {}, (), None, True),
        ({"type": "var", "name": "s", "op": "contains", "value": "BIKE"}, {"s": "blue bike"},
         (), None, True),
        ({"type": "tag", "tag": "vip"}, {}, ("vip",), None, True),
        ({"type": "keyword", "keywords": ["price"]}, {}, (), "What's the PRICE?", True),
        ({"type": "keyword", "keywords": ["price"]}, {}, (), "priceless", False),
        ({"type": "regex", "pattern": r"^\d{5}$"}, {}, (), "10115", True),
        ({"type": "regex", "pattern": r"^\d{5}$"}, {}, (), None, False),
        # A tenant's pattern on a customer's text: with a backtracking engine this one takes
        # 2^64 steps on this text (the whole flows service stopped, for every workspace); a
        # linear-time engine (RE2) answers at once.
        ({"type": "regex", "pattern": r"^(a+)+$"}, {}, (), "a" * 64 + "!", False),
        ({"type": "regex", "pattern": r"^(a|aa)+$"}, {}, (), "a" * 64, True),
    ],
)  # fmt: skip
def test_branch_conditions(
    when: dict[str, Any], variables: dict[str, Any], tags: tuple[str, ...], text: str | None,
    expected: bool,
) -> None:  # fmt: skip
    case = Case.model_validate({"when": when, "next": "x"})
    assert holds(case, variables, tags, text) is expected
    negated = Case.model_validate({"when": when, "next": "x", "negate": True})
    assert holds(negated, variables, tags, text) is not expected


def test_the_demo_flow_from_start_to_qualified() -> None:
    doc = validate(DEMO_FLOW)
    greet = start(doc)
    assert texts(greet) == ["Hi Ada! How can we help you today?"]
    assert greet.effects[0].data["buttons"] == [
        [{"text": "Get a quote", "data": "quote"}],
        [{"text": "Talk to a person", "data": "person"}],
    ]
    assert greet.state.status is RunStatus.WAITING
    assert then(greet.state, doc, "text", text="hi") is None  # waits for a button
    asked = then(greet.state, doc, "button", data="quote")
    assert asked is not None
    assert texts(asked) == ["Happy to help. What is your name?"]
    named = then(asked.state, doc, "text", text="Ada")
    assert named is not None
    wrong = then(named.state, doc, "text", text="nope")
    assert wrong is not None
    assert wrong.state.cursor == "ask_phone"
    assert wrong.state.waiting is not None
    assert wrong.state.waiting.attempts == 1
    assert [s.outcome for s in wrong.steps] == ["invalid"]
    done = then(wrong.state, doc, "text", text="+44 20 7946 0958")
    assert done is not None
    assert [(e.kind, e.data.get("stage")) for e in done.effects] == [
        ("tag", None),
        ("lead_stage", "qualified"),
        ("send", None),
    ]
    assert done.state.status is RunStatus.ENDED
    assert done.state.variables == {"name": "Ada", "phone": "+442079460958"}
    # every effect id is unique across the run and follows from the run and a counter
    ids = [e.id for d in (greet, asked, named, wrong, done) for e in d.effects]
    assert ids == [f"r1:{n}" for n in range(1, len(ids) + 1)]


def test_person_button_hands_off_and_a_release_continues() -> None:
    doc = validate(DEMO_FLOW)
    handed = then(start(doc).state, doc, "button", data="person")
    assert handed is not None
    assert handed.state.status is RunStatus.HANDED_OFF
    assert then(handed.state, doc, "text", text="hello?") is None
    released = then(handed.state, doc, "release")
    assert released is not None
    assert released.state.status is RunStatus.ENDED


def test_on_viber_a_reply_button_comes_back_as_text_and_is_the_press() -> None:
    """A Viber keyboard's reply button sends its data back as the user's message: there is
    no callback. A run waiting for a press took that text for no input and waited forever.
    On Viber the text that is a waiting button's data is that press; elsewhere (where a
    press is a callback) a typed text is still no press."""
    menu = {"a": {"type": "send", "text": "Pick one", "buttons": [[
        {"text": "Prices", "data": "prices", "next": "p"},
        {"text": "Hours", "data": "hours", "next": "h"}]]},
        "p": {"type": "end", "text": "From 10 EUR"},
        "h": {"type": "end", "text": "9-18"}}  # fmt: skip
    doc = flow(menu)
    viber = CONV.model_copy(update={"channel": Channel.VIBER})
    waiting = decide(new_run("r1", "f1", 1, doc, viber), doc, Input("start", "i0", T0))
    assert waiting is not None
    pressed = then(waiting.state, doc, "text", text="prices")
    assert pressed is not None
    assert texts(pressed) == ["From 10 EUR"]
    assert not [e for e in pressed.effects if e.kind == "answer"]  # no callback to answer
    assert then(waiting.state, doc, "text", text="something else") is None
    on_telegram = start(doc)
    assert then(on_telegram.state, doc, "text", text="prices") is None


def test_ask_gives_up_after_max_attempts_and_times_out() -> None:
    doc = flow(
        {
            "a": {"type": "ask", "text": "Age?", "var": "age", "validate": "number",
                  "max_attempts": 2, "on_invalid": "bad", "timeout_s": 60, "on_timeout": "late"},
            "bad": {"type": "end", "text": "Never mind."},
            "late": {"type": "end", "text": "Too late."},
        }
    )  # fmt: skip
    asked = start(doc)
    timer = [e for e in asked.effects if e.kind == "timer"]
    assert timer[0].data["due_at"] == (T0 + timedelta(seconds=60)).isoformat()
    once = then(asked.state, doc, "text", text="x")
    assert once is not None
    assert texts(once) == ["Sorry, that does not look right. Age?"]
    twice = then(once.state, doc, "text", text="y")
    assert twice is not None
    assert texts(twice) == ["Never mind."]
    assert twice.state.status is RunStatus.ENDED
    waiting = asked.state.waiting
    assert waiting is not None
    assert then(asked.state, doc, "timer", timer_id="someone-else") is None
    late = then(asked.state, doc, "timer", timer_id=waiting.timer_id)
    assert late is not None
    assert texts(late) == ["Too late."]


def test_branch_set_goto_and_templates() -> None:
    doc = flow(
        {
            "a": {"type": "set", "var": "who", "value": "{{ contact.first_name }} & co",
                  "next": "b"},
            "b": {"type": "branch", "cases": [
                {"when": {"type": "keyword", "keywords": ["vip"]}, "next": "vip"}],
                "default": "c"},
            "c": {"type": "goto", "next": "d"},
            "d": {"type": "end", "text": "Hello {{ vars.who }} ({{ message.text }})"},
            "vip": {"type": "end", "text": "VIP"},
        }
    )  # fmt: skip
    plain = start(doc, text="/start <b>")
    assert texts(plain) == ["Hello Ada &amp; co (/start &lt;b&gt;)"]
    assert texts(start(doc, text="/start vip")) == ["VIP"]


def test_a_loop_without_waiting_stops_at_the_step_limit() -> None:
    doc = flow({"a": {"type": "goto", "next": "b"}, "b": {"type": "goto", "next": "a"}})
    decision = start(doc)
    assert decision.state.status is RunStatus.ENDED
    assert decision.steps[-1].outcome == "step_limit"


def test_delay_waits_for_its_own_timer() -> None:
    doc = flow(
        {"a": {"type": "delay", "minutes": 1, "seconds": 30, "next": "b"},
         "b": {"type": "end", "text": "later"}}
    )  # fmt: skip
    waiting = start(doc)
    assert waiting.state.waiting is not None
    assert waiting.state.waiting.due_at == T0 + timedelta(seconds=90)
    assert then(waiting.state, doc, "text", text="hurry") is None
    fired = then(waiting.state, doc, "timer", timer_id=waiting.state.waiting.timer_id)
    assert fired is not None
    assert texts(fired) == ["later"]


@pytest.mark.parametrize(
    ("channels", "channel", "expected"),
    [
        # a flow reaching a Telegram bot writes HTML: on WhatsApp it shows as WhatsApp's
        # markers and the link's address, never raw tags (it did before)
        ([], Channel.WHATSAPP, "*Hi* <i> shop (https://x.test)"),
        (["telegram", "whatsapp"], Channel.WHATSAPP, "*Hi* <i> shop (https://x.test)"),
        (["telegram", "viber"], Channel.VIBER, "Hi <i> shop (https://x.test)"),
        (["telegram"], Channel.TELEGRAM, '<b>Hi</b> &lt;i&gt; <a href="https://x.test">shop</a>'),
        # a flow for WhatsApp alone writes the text it shows, tags and all
        (["whatsapp"], Channel.WHATSAPP, '<b>Hi</b> <i> <a href="https://x.test">shop</a>'),
        # a user account sends what the parse mode means (entities): it writes HTML too
        (["mtproto"], Channel.MTPROTO, '<b>Hi</b> &lt;i&gt; <a href="https://x.test">shop</a>'),
        (["mtproto", "whatsapp"], Channel.WHATSAPP, "*Hi* <i> shop (https://x.test)"),
    ],
)
def test_a_flow_s_markup_shows_on_each_channel_as_that_channel_can(
    channels: list[str], channel: Channel, expected: str
) -> None:
    text = '<b>Hi</b> {{ vars.x }} <a href="https://x.test">shop</a>'
    doc = flow({"a": {"type": "end", "text": text}}, variables={"x": "<i>"},
               channels=[{"channel": c} for c in channels])  # fmt: skip
    conv = CONV.model_copy(update={"channel": channel})
    decision = decide(new_run("r1", "f1", 1, doc, conv), doc, Input("start", "i0", T0))
    assert decision is not None
    assert texts(decision) == [expected]


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        (Channel.TELEGRAM, ("a &lt;i&gt; b", "HTML")),
        (Channel.WHATSAPP, ("a <i> b", None)),
        (Channel.MTPROTO, ("a &lt;i&gt; b", "HTML")),
    ],
)
def test_values_are_escaped_per_provider(channel: Channel, expected: tuple[str, str]) -> None:
    assert render("a {{ vars.x }} b", {"vars": {"x": "<i>"}}, channel) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start", ("start", None)),
        ("/start promo-7", ("start", "promo-7")),
        ("/Help@demo_bot", ("help", None)),
        ("start", None),
        ("/", None),
    ],
)
def test_commands_are_parsed(text: str, expected: object) -> None:
    assert parse_command(text) == expected


def _published(flow_id: str, triggers: list[dict[str, Any]]) -> Published:
    doc = validate(
        {"name": flow_id, "triggers": triggers, "start": "a", "steps": {"a": {"type": "end"}}}
    )
    return Published(flow_id, 1, doc)


def test_triggers_pick_the_right_flow() -> None:
    flows = [
        _published("any-start", [{"type": "start"}]),
        _published("promo", [{"type": "start", "payload": "promo"}]),
        _published("help", [{"type": "command", "command": "help"}]),
        _published("words", [{"type": "keyword", "keywords": ["price"]}]),
        _published("menu", [{"type": "button", "data": "menu"}]),
        _published("welcome", [{"type": "first_message"}]),
    ]

    def started(found: Any) -> str | None:
        return found.flow.flow_id if found else None

    assert started(command_start(flows, "/start promo")) == "promo"
    assert started(command_start(flows, "/start other")) == "any-start"
    assert started(command_start(flows, "/help")) == "help"
    assert started(command_start(flows, "/unknown")) is None
    kw = {"button": None, "new_conversation": False}
    assert started(other_start(flows, text="the price?", **kw)) == "words"
    assert started(other_start(flows, text="hi", **kw)) is None
    assert started(other_start(flows, text="hi", button=None, new_conversation=True)) == "welcome"
    assert started(other_start(flows, text=None, button="menu", new_conversation=True)) == "menu"


def _plan(current: RunRecorded | None, inp: Input, doc: FlowDocument) -> list[RunRecorded]:
    return plan(
        session="cs_1",
        current=current,
        active_doc=doc if current is not None and current.status is not RunStatus.ENDED else None,
        published=[Published("f1", 1, doc)],
        inp=inp,
        conversation=CONV,
    )


def test_plan_starts_continues_ignores_redeliveries_and_replaces() -> None:
    doc = validate(DEMO_FLOW)
    (first,) = _plan(None, Input("text", "m1", T0, text="/start"), doc)
    assert first.input_kind == "start:start"
    assert first.decision == 1
    # the same input again (a redelivery) changes nothing
    assert _plan(first, Input("text", "m1", T0, text="/start"), doc) == []
    (pressed,) = _plan(first, Input("button", "m2", T0, data="quote"), doc)
    assert pressed.run_id == first.run_id
    assert pressed.decision == 2
    assert pressed.recent_inputs == ("m1", "m2")
    # /start while a run waits: the old run ends on its own subject, a new one starts
    ended, restarted = _plan(pressed, Input("text", "m3", T0, text="/start"), doc)
    assert (ended.run_id, ended.status, ended.input_id) == (first.run_id, "ended", "m3#replaced")
    assert restarted.run_id != first.run_id
    assert restarted.input_id == "m3"
    # a text nothing waits for and no trigger takes: nothing to record
    finished = restarted.model_copy(update={"status": RunStatus.ENDED})
    assert _plan(finished, Input("text", "m4", T0, text="thanks"), doc) == []


def test_a_telegram_send_of_a_flow_without_telegram_channels_still_escapes_its_values() -> None:
    """A WhatsApp-only flow's texts are plain, but its campaign step may go to a Telegram
    segment: sent with the parse mode there, its values escaped for it."""
    scope = {"vars": {"x": "<i>"}}
    assert render("a {{ vars.x }}", scope, Channel.TELEGRAM, markup=False) == (
        "a &lt;i&gt;",
        "HTML",
    )
    assert render("<b>a</b> {{ vars.x }}", scope, Channel.WHATSAPP, markup=False) == (
        "<b>a</b> <i>",
        None,
    )


def test_a_file_goes_with_its_caption_in_the_flow_s_markup() -> None:
    """A send or campaign with media: the file, and the HTML text as its caption with the
    parse mode (it went as the words alone: a channel post's bold was lost), for a send
    and for a campaign alike; on WhatsApp the markup becomes what WhatsApp shows."""
    from switchboard.events.catalog.outbound import OutMedia
    from switchboard.flows.effects import content_of

    photo = {"kind": "photo", "url": "https://cdn.example.com/p.jpg"}
    doc = flow({"a": {"type": "send", "text": "<b>Sofa</b> for {{ contact.first_name }}",
                      "media": photo, "next": "b"},
                "b": {"type": "campaign", "segment": {"channel": "telegram", "tags": ["vip"]},
                      "text": "<i>Sale</i>", "media": photo}})  # fmt: skip
    decision = start(doc)
    send, campaign = [e for e in decision.effects if e.kind in ("send", "campaign")]
    for effect, caption in ((send, "<b>Sofa</b> for Ada"), (campaign, "<i>Sale</i>")):
        content = content_of(effect)
        assert isinstance(content, OutMedia)
        assert (content.kind, content.source.url, content.caption) == ("photo", photo["url"],
                                                                       caption)  # fmt: skip
        assert content.parse_mode == "HTML"
    conv = CONV.model_copy(update={"channel": Channel.WHATSAPP})
    on_whatsapp = decide(new_run("r2", "f1", 1, doc, conv), doc, Input("start", "i0", T0))
    assert on_whatsapp is not None
    sent = content_of(next(e for e in on_whatsapp.effects if e.kind == "send"))
    assert isinstance(sent, OutMedia)
    assert (sent.caption, sent.parse_mode) == ("*Sofa* for Ada", None)
