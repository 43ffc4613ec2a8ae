"""Flow documents: every problem is reported with its JSON path and reason; the published
schema is valid JSON Schema and accepts the demo flow."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from switchboard.flows.demo import DEMO_FLOW
from switchboard.flows.document import InvalidFlowError, json_path, json_schema, validate


def problems(doc: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidFlowError) as info:
        validate(doc)
    return [(p["path"], p["reason"]) for p in info.value.problems]


def demo(**steps: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DEMO_FLOW)
    doc["steps"].update(steps)
    return doc


def test_the_demo_flow_is_valid_and_matches_the_published_schema() -> None:
    validate(DEMO_FLOW)
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    assert not list(Draft202012Validator(schema).iter_errors(DEMO_FLOW))


def test_structural_problems_name_each_path() -> None:
    doc = demo(
        greet={"type": "send", "text": "", "buttons": [[{"text": "x"}]]},
        ask_phone={"type": "ask", "text": "?", "var": "9lives", "validate": "fax"},
        odd={"type": "teleport"},
    )
    doc["triggers"] = []
    found = dict(problems(doc))
    assert set(found) == {
        "$.triggers",
        "$.steps.greet.text",
        "$.steps.greet.buttons[0][0].data",
        "$.steps.ask_phone.var",
        "$.steps.ask_phone.validate",
        "$.steps.odd",
    }
    assert "at least 1" in found["$.triggers"]
    assert "Field required" in found["$.steps.greet.buttons[0][0].data"]
    assert "teleport" in found["$.steps.odd"]


@pytest.mark.parametrize(
    ("steps", "path", "reason"),
    [
        ({"thanks": {"type": "goto", "next": "nowhere"}}, "$.steps.thanks.next", "no step"),
        (
            {"greet": {"type": "send", "text": "hi", "buttons": [[
                {"text": "a", "data": "x", "next": "ask_name"},
                {"text": "b", "data": "x", "next": "ask_name"}]]}},
            "$.steps.greet.buttons[0][1].data",
            "duplicate data",
        ),
        (
            {"greet": {"type": "send", "text": "Hi {{ name }}"}},
            "$.steps.greet.text",
            "unknown placeholder {{name}}",
        ),
        (
            {"b": {"type": "branch", "cases": [
                {"when": {"type": "regex", "pattern": "(unclosed"}, "next": "thanks"}]}},
            "$.steps.b.cases[0].when.pattern",
            "missing )",
        ),
        (  # a backreference: RE2, which matches in linear time, has none
            {"b": {"type": "branch", "cases": [
                {"when": {"type": "regex", "pattern": r"(a)\1"}, "next": "thanks"}]}},
            "$.steps.b.cases[0].when.pattern",
            "RE2",
        ),
        ({"qualify": {"type": "lead", "action": "move_stage"}}, "$.steps.qualify.stage", "needs"),
        ({"d": {"type": "delay", "days": 31}}, "$.steps.d", "in total"),
        ({"d": {"type": "delay"}}, "$.steps.d", "in total"),
        (
            {"ask_name": {"type": "ask", "text": "?", "var": "n", "validate": "choice"}},
            "$.steps.ask_name.choices",
            "choice needs choices",
        ),
    ],
)  # fmt: skip
def test_semantic_problems_name_each_path(steps: dict[str, Any], path: str, reason: str) -> None:
    found = problems(demo(**steps))
    assert any(p == path and reason in r for p, r in found), found


def test_html_telegram_cannot_parse_is_named_where_a_bot_would_send_it() -> None:
    """A flow's texts go to Telegram bots as HTML (values escaped, the markup the author's):
    HTML Telegram cannot parse failed every send of the step, after the flow was live."""
    broken = demo(greet={"type": "send", "text": "Hi {{ contact.first_name }}<br>welcome"},
                  thanks={"type": "end", "text": "<b>Thanks"})  # fmt: skip
    found = problems(broken)
    assert [path for path, _ in found] == ["$.steps.greet.text", "$.steps.thanks.text"]
    assert 'unsupported start tag "br"' in found[0][1]
    # Where no bot reads it as HTML, the same text is plain: nothing to parse.
    validate({**broken, "channels": [{"channel": "whatsapp"}]})
    validate({**broken, "format": "markdown_v2"})
    # Values are escaped for the markup: a placeholder inside tags is fine.
    validate(demo(thanks={"type": "end", "text": "<b>Thanks, {{ contact.first_name }}</b>"}))


def test_start_must_name_a_step_and_a_document_is_an_object() -> None:
    doc = copy.deepcopy(DEMO_FLOW)
    doc["start"] = "missing"
    assert problems(doc) == [("$.start", "no step 'missing' in steps")]
    assert problems([1, 2]) == [("$", "a flow document is a JSON object")]


@pytest.mark.parametrize(
    ("loc", "path"),
    [(("steps", "a", "buttons", 0, 1), "$.steps.a.buttons[0][1]"), (("x y",), '$["x y"]')],
)
def test_json_paths(loc: tuple[Any, ...], path: str) -> None:
    assert json_path(loc) == path


def test_an_invalid_only_item_is_one_problem_not_two() -> None:
    doc = copy.deepcopy(DEMO_FLOW)
    doc["triggers"] = [{"type": "start", "payload": 5}]
    assert problems(doc) == [("$.triggers[0].payload", "Input should be a valid string")]


def test_buttons_a_channel_of_the_flow_cannot_show_are_named_when_saved() -> None:
    """A flow naming a Telegram user account with a menu, or one with more choices than
    WhatsApp or Viber show, was saved and published, and every run then failed at that send
    (`unsupported_content`) while the run's history said `sent`."""
    menu = {"type": "send", "text": "Pick one",
            "buttons": [[{"text": f"Item {n}", "data": f"i{n}"}] for n in range(11)]}  # fmt: skip
    sizes = {"type": "ask", "text": "Size?", "var": "size", "validate": "choice",
             "choices": ["S", "M"]}  # fmt: skip
    steps = {"greet": menu, "ask_size": sizes}
    user = {"channels": [{"channel": "mtproto", "account": "sales-1"}]}
    found = problems({**demo(**steps), **user})
    assert [p for p, _ in found] == ["$.steps.greet.buttons", "$.steps.ask_size.choices"]
    assert all(r.startswith("on mtproto: Telegram user accounts cannot") for _, r in found)
    # Every bot and number: eleven buttons are more than WhatsApp shows, not Viber.
    found = problems({**demo(**steps), "channels": []})
    assert found == [("$.steps.greet.buttons", found[0][1])]
    assert found[0][1].startswith("on whatsapp: WhatsApp shows at most 10 buttons, not 11")
    validate({**demo(**steps), "channels": [{"channel": "telegram"}, {"channel": "viber"}]})
    # A user account asking for a text, with no buttons, is a flow it can run.
    validate({**user, "name": "ask", "triggers": [{"type": "keyword", "keywords": ["size"]}],
              "start": "ask_size", "steps": {"ask_size": {**sizes, "validate": "text",
                                                          "choices": []}}})  # fmt: skip


def _with_file(media: dict[str, Any], channels: list[str], **send: Any) -> dict[str, Any]:
    step = {"type": "send", "media": media, **send}
    return {"name": "f", "triggers": [{"type": "keyword", "keywords": ["go"]}], "start": "a",
            "steps": {"a": step}, "channels": [{"channel": c} for c in channels]}  # fmt: skip


PDF = {"kind": "document", "url": "https://cdn.example.com/c.pdf", "file_name": "c.pdf"}


@pytest.mark.parametrize(
    ("media", "channels", "send", "expected"),
    [
        (PDF, ["telegram", "whatsapp", "mtproto"], {"text": "Catalog"}, []),
        (PDF, ["viber"], {"text": "Catalog"}, [
            ("$.steps.a.media.size", "on viber: viber needs a document's size in bytes"),
            ("$.steps.a.text", "on viber: a viber document has no text beside it")]),
        ({**PDF, "size": 2048}, ["viber"], {}, []),
        ({"kind": "voice", "url": "https://cdn.example.com/v.ogg"}, ["viber"], {},
         [("$.steps.a.media.kind", "on viber: viber sends no voice by URL")]),
        ({"kind": "audio", "url": "https://cdn.example.com/a.mp3"}, ["whatsapp"],
         {"text": "Listen", "buttons": [[{"text": "Ok", "data": "ok"}]]},
         [("$.steps.a.buttons", "on whatsapp: whatsapp puts at most 3 buttons under a "
           "captioned animation, document, photo, video")]),
        ({"kind": "photo", "url": "https://cdn.example.com/p.jpg"}, ["viber"], {"text": "x" * 513},
         [("$.steps.a.text", "on viber: a viber caption is at most 512 characters")]),
        ({"kind": "photo", "url": "https://cdn.example.com/p.jpg"}, ["telegram"],
         {"text": "x" * 1025},
         [("$.steps.a.text", "on telegram: a telegram caption is at most 1024 characters")]),
    ],
)  # fmt: skip
def test_a_file_is_checked_against_every_channel_of_the_flow(
    media: dict[str, Any], channels: list[str], send: dict[str, Any], expected: list[Any]
) -> None:
    """A send step's file goes by URL; what a channel of the flow cannot take as it is
    (a kind, a size it must state, a caption, buttons under it) is named when saved."""
    doc = _with_file(media, channels, **send)
    if not expected:
        validate(doc)
    else:
        assert problems(doc) == expected


def test_a_send_needs_a_text_or_a_file_and_a_file_an_http_url() -> None:
    assert problems(demo(greet={"type": "send"})) == [
        ("$.steps.greet", "a send needs a text or media")
    ]
    bad = problems(_with_file({"kind": "photo", "url": "file:///etc/passwd"}, ["telegram"]))
    assert [p for p, _ in bad] == ["$.steps.a.media.url"]


def test_a_long_text_above_buttons_is_named_where_whatsapp_would_refuse_it() -> None:
    """WhatsApp takes 1024 characters above buttons (an interactive message's body), not a
    text's 4096: such a menu failed every run at its send."""
    menu = {"type": "send", "text": "x" * 1025, "buttons": [[{"text": "Ok", "data": "ok"}]]}
    found = problems({**demo(greet=menu), "channels": [{"channel": "whatsapp"}]})
    assert [p for p, _ in found] == ["$.steps.greet.buttons"]
    assert "at most 1024 characters, not 1025" in found[0][1]
    validate({**demo(greet=menu), "channels": [{"channel": "telegram"}]})
    validate({**demo(greet={**menu, "buttons": []}), "channels": [{"channel": "whatsapp"}]})
    # A user account takes no buttons, under a file either.
    photo = {"kind": "photo", "url": "https://cdn.example.com/p.jpg"}
    found = problems(
        _with_file(photo, ["mtproto"], text="Hi", buttons=[[{"text": "A", "data": "a"}]])
    )
    assert [p for p, _ in found] == ["$.steps.a.buttons"]


def test_a_campaign_step_carries_a_file_checked_against_its_segments_channel() -> None:
    promo = {"kind": "video", "url": "https://cdn.example.com/promo.mp4"}
    step = {"type": "campaign", "segment": {"channel": "viber", "tags": ["vip"]},
            "text": "New in", "media": promo}  # fmt: skip
    doc = {**demo(greet=step), "channels": []}
    assert problems(doc) == [
        ("$.steps.greet.media.size", "on viber: viber needs a video's size in bytes")
    ]
    validate({**doc, "steps": {**doc["steps"], "greet": {**step, "media": {**promo, "size": 9}}}})
    bare = {**step, "text": None, "media": None}
    assert problems({**doc, "steps": {**doc["steps"], "greet": bare}}) == [
        ("$.steps.greet", "a campaign needs a text or media")
    ]
