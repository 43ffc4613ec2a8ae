"""The steps and conditions beyond the basics, decided purely: webhook calls and their
answers, contact attributes, CRM conditions (contact tags and attributes, lead stage), lead
creation, MarkdownV2 escaping, YAML documents, and answering a pressed button."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import (
    ContactCreated,
    ContactUpdated,
    Identity,
    LeadCreated,
    LeadStageChanged,
)
from switchboard.events.catalog.flows import RunRecorded, RunStatus
from switchboard.flows.demo import DEMO_FLOW
from switchboard.flows.document import InvalidFlowError, parse, validate
from switchboard.flows.dryrun import DryRun, play
from switchboard.flows.effects import campaign_command, fold_facts
from switchboard.flows.engine import (
    ContactFacts,
    Decision,
    Input,
    WebhookResult,
    created_lead_id,
    decide,
    extract,
)
from switchboard.flows.templates import render

from .flows_support import T0, flow, start

WEBHOOK_FLOW = {
    "a": {
        "type": "webhook",
        "url": "http://127.0.0.1:9/quote",
        "secret": "crm",
        "fields": {"who": "{{ contact.first_name }}"},
        "save": {"price": "quote.price", "first": "items.0"},
        "next": "ok",
        "on_failure": "sorry",
    },
    "ok": {"type": "end", "text": "Price: {{ vars.price }}"},
    "sorry": {"type": "end", "text": "Try later"},
}


def test_a_webhook_step_calls_then_branches_on_the_answer() -> None:
    doc = flow(WEBHOOK_FLOW)
    first = start(doc)
    (call,) = first.effects
    assert call.kind == "webhook"
    assert call.data["payload"]["data"]["fields"] == {"who": "Ada"}
    assert first.state.waiting is not None
    assert first.state.waiting.kind == "webhook"
    # A text while the call is pending is not for this run.
    text = Input("text", "i1", T0, text="hello")
    assert decide(first.state, doc, text) is None

    def answer(result: WebhookResult, call_id: str = call.id) -> Decision:
        decision = decide(
            first.state, doc, Input("webhook", "w", T0, timer_id=call_id, result=result)
        )
        assert decision is not None
        return decision

    assert decide(first.state, doc, Input("webhook", "w", T0, timer_id="other")) is None
    ok = answer(WebhookResult(200, body={"quote": {"price": 12.5}, "items": ["x"]}))
    assert ok.state.variables == {"price": 12.5, "first": "x"}
    assert [e.data["text"] for e in ok.effects] == ["Price: 12.5"]
    assert ok.state.status is RunStatus.ENDED
    for failed in (
        WebhookResult(500, body={"quote": {"price": 1}}),
        WebhookResult(None, error="no answer within 5.0 s"),
        WebhookResult(200, body={"other": 1}),  # a path the answer does not have
    ):
        decision = answer(failed)
        assert [e.data["text"] for e in decision.effects] == ["Try later"]
        assert decision.steps[0].outcome == "failed"


def test_extract_follows_dotted_paths_and_list_indexes() -> None:
    body = {"a": {"b": [1, {"c": "d"}]}}
    assert extract({"x": "a.b.1.c", "y": "a.b.0"}, body) == ({"x": "d", "y": 1}, [])
    assert extract({"x": "a.z"}, body) == ({}, ["a.z"])
    assert extract({"x": "a"}, None) == ({}, ["a"])


def test_crm_conditions_see_the_contact_and_this_runs_own_changes() -> None:
    doc = flow(
        {
            "a": {
                "type": "branch",
                "cases": [
                    {"when": {"type": "lead_stage", "stages": ["won"]}, "next": "won"},
                    {"when": {"type": "attribute", "name": "city", "op": "eq", "value": "Oslo"},
                     "next": "oslo"},
                    {"when": {"type": "tag", "tag": "vip"}, "next": "vip"},
                ],
                "default": "set",
            },
            "set": {"type": "set_attribute", "attributes": {"city": "Oslo"}, "next": "lead"},
            "lead": {"type": "lead", "action": "create", "stage": "won", "next": "a"},
            "won": {"type": "end", "text": "won"},
            "oslo": {"type": "end", "text": "oslo"},
            "vip": {"type": "end", "text": "vip"},
        }
    )  # fmt: skip

    def said(facts: ContactFacts) -> list[str]:
        return [e.data["text"] for e in start(doc, facts=facts).effects if e.kind == "send"]

    assert said(ContactFacts(stage="won")) == ["won"]
    assert said(ContactFacts(attributes={"city": "Oslo"}, stage="new")) == ["oslo"]
    assert said(ContactFacts(tags=("vip",))) == ["vip"]
    # Nothing holds: the run sets the attribute, creates the lead as won, and its own
    # changes are what the branch sees the second time round.
    decision = start(doc, facts=ContactFacts())
    kinds = [(e.kind, e.data) for e in decision.effects]
    assert kinds == [
        ("attribute", {"attributes": {"city": "Oslo"}}),
        ("lead_stage", {"stage": "won", "create": True, "lead_id": created_lead_id("r1:2")}),
        ("send", {"text": "won", "parse_mode": "HTML", "buttons": []}),
    ]


def test_a_created_lead_has_a_deterministic_id_and_later_lead_steps_act_on_it() -> None:
    doc = flow(
        {
            "a": {"type": "lead", "action": "create", "stage": "new", "next": "b"},
            "b": {"type": "lead", "action": "move_stage", "stage": "qualified", "next": "c"},
            "c": {"type": "lead", "action": "assign", "assignee": "ann", "next": "d"},
            "d": {"type": "end", "text": "{{ vars.lead_id }}"},
        }
    )
    first, again = start(doc), start(doc)
    lead = created_lead_id("r1:1")
    assert lead.startswith("ld_")
    assert lead != created_lead_id("r2:1")
    assert [(e.kind, e.data) for e in first.effects] == [
        ("lead_stage", {"stage": "new", "create": True, "lead_id": lead}),
        ("lead_stage", {"stage": "qualified", "lead_id": lead}),
        ("lead_assign", {"assignee": "ann", "lead_id": lead}),
        ("send", {"text": lead, "parse_mode": "HTML", "buttons": []}),
    ]
    # Deciding the same input again (a redelivery) names the same lead.
    assert again.effects == first.effects


def test_without_a_created_lead_lead_steps_act_on_the_contacts_first_lead() -> None:
    doc = flow({"a": {"type": "lead", "action": "move_stage", "stage": "won"}})
    assert [(e.kind, e.data) for e in start(doc).effects] == [("lead_stage", {"stage": "won"})]


def test_contact_facts_fold_from_crm_events() -> None:
    ident = Identity(channel=Channel.TELEGRAM, external_id="7")
    events = [
        ContactCreated(
            contact_id="c", identities=(ident,), source_channel=Channel.TELEGRAM,
            attributes={"city": "Oslo", "age": 3},
        ),
        ContactUpdated(contact_id="c", attributes={"age": None}, tags_added=("a", "b")),
        ContactUpdated(contact_id="c", tags_removed=("a",), tags_added=("c",)),
        LeadCreated(lead_id="l", contact_id="c", stage="new"),
        LeadStageChanged(lead_id="l", contact_id="c", from_stage="new", to_stage="qualified"),
    ]  # fmt: skip
    assert fold_facts(list(events)) == ContactFacts(
        attributes={"city": "Oslo"}, tags=("b", "c"), stage="qualified"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a_b*c", r"a\_b\*c"),
        ("1.5! (x) [y] {z}", r"1\.5\! \(x\) \[y\] \{z\}"),
        ("~`>#+-=|\\", r"\~\`\>\#\+\-\=\|\\"),
    ],
)
def test_markdown_v2_escapes_every_special_character(value: str, expected: str) -> None:
    text, mode = render("*{{ vars.v }}*", {"vars": {"v": value}}, Channel.TELEGRAM, "markdown_v2")
    assert (text, mode) == (f"*{expected}*", "MarkdownV2")
    assert render("{{ vars.v }}", {"vars": {"v": value}}, Channel.VIBER, "markdown_v2") == (
        value,
        None,
    )


def test_a_markdown_v2_flow_sends_with_that_parse_mode() -> None:
    doc = flow(
        {"a": {"type": "end", "text": "*Hi* {{ contact.first_name }}"}}, format="markdown_v2"
    )
    (send,) = start(doc).effects
    assert send.data["parse_mode"] == "MarkdownV2"


def test_yaml_documents_parse_to_the_same_flow() -> None:
    text = """
name: Demo in YAML
triggers:
  - type: start
start: hi
steps:
  hi:
    type: send
    text: "Hi {{ contact.first_name }}"
"""
    doc = validate(parse(text, "application/yaml"))
    assert doc.steps["hi"].type == "send"
    assert validate(parse(text)) == doc  # no media type: JSON first, then YAML
    with pytest.raises(InvalidFlowError) as bad:
        parse("steps: [unclosed", "application/yaml")
    assert bad.value.problems[0]["path"] == "$"
    assert bad.value.problems[0]["reason"].startswith("not YAML")
    with pytest.raises(InvalidFlowError) as bad_json:
        parse("{nope", "application/json")
    assert bad_json.value.problems[0]["reason"].startswith("not JSON")


@pytest.mark.parametrize(
    ("text", "media_type", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "application/json", "not JSON"),
        ("[" * 100_000 + "]" * 100_000, None, "not JSON"),
        ("x: " + "[" * 5_000 + "]" * 5_000, "application/yaml", "not YAML"),
    ],
    ids=["json", "unlabelled", "yaml"],
)
def test_a_document_nested_past_any_flow_is_refused_at_its_root(
    text: str, media_type: str | None, reason: str
) -> None:
    """Found on ``just up``: a body of nested brackets made the parsers recurse until Python
    stopped them (RecursionError), and the API answered 500. It is a document no flow is, so
    it is refused as one that cannot be read."""
    with pytest.raises(InvalidFlowError) as bad:
        parse(text, media_type)
    (problem,) = bad.value.problems
    assert problem["path"] == "$"
    assert problem["reason"].startswith(reason)
    assert "nested" in problem["reason"]


@pytest.mark.parametrize(
    ("step", "path", "reason"),
    [
        ({"type": "webhook", "url": "ftp://x", "secret": "s"}, "$.steps.a.url", "pattern"),
        ({"type": "webhook", "url": "http://x", "secret": "s", "timeout_s": 30},
         "$.steps.a.timeout_s", "less than or equal"),
        ({"type": "webhook", "url": "http://x", "secret": "s", "on_failure": "zz"},
         "$.steps.a.on_failure", "no step 'zz'"),
        ({"type": "webhook", "url": "http://x", "secret": "s", "save": {"v": "a..b"}},
         "$.steps.a.save.v", "pattern"),
        ({"type": "lead", "action": "create"}, "$.steps.a.stage", "create needs a stage"),
        ({"type": "set_attribute", "attributes": {"c": "{{ nope }}"}},
         "$.steps.a.attributes.c", "unknown placeholder"),
    ],
)  # fmt: skip
def test_invalid_new_steps_name_their_path(step: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(InvalidFlowError) as exc:
        flow({"a": step})
    assert any(p["path"] == path and reason in p["reason"] for p in exc.value.problems), (
        exc.value.problems
    )


def test_a_pressed_button_is_answered_once_with_its_callback_id() -> None:
    doc = validate(DEMO_FLOW)
    greeted = start(doc)
    press = Input("button", "b1", T0 + timedelta(seconds=1), data="quote", callback_id="cb-9")
    decision = decide(greeted.state, doc, press)
    assert decision is not None
    answers = [e for e in decision.effects if e.kind == "answer"]
    assert [a.data for a in answers] == [{"callback_id": "cb-9"}]


def test_a_dry_run_scripts_the_webhook_answer_and_the_contact() -> None:
    doc = flow(
        {
            **WEBHOOK_FLOW,
            "ok": {
                "type": "branch",
                "cases": [{"when": {"type": "tag", "tag": "vip"}, "next": "vip"}],
                "default": "plain",
            },
            "vip": {"type": "end", "text": "VIP price {{ vars.price }}"},
            "plain": {"type": "end", "text": "Price {{ vars.price }}"},
        }
    )
    request = DryRun.model_validate(
        {
            "contact": {"tags": ["vip"]},
            "transcript": [
                {"webhook": {"status": 200, "body": {"quote": {"price": 3}, "items": [1]}}}
            ],
        }
    )  # fmt: skip
    decisions = play(doc, request)
    assert decisions[-1]["effects"][-1]["data"]["text"] == "VIP price 3"
    timeout = DryRun.model_validate({"transcript": [{"webhook": {"status": None}}]})
    assert play(doc, timeout)[-1]["effects"][-1]["data"]["text"] == "Try later"


def test_a_campaign_step_starts_a_segment_campaign_once_per_run_and_step() -> None:
    doc = flow(
        {
            "a": {
                "type": "campaign",
                "segment": {"channel": "telegram", "tags": ["vip"], "stage": "won"},
                "text": "Sale for {{ vars.who }} & friends",
                "title": "VIP sale",
                "next": "b",
            },
            "b": {"type": "end", "text": "Sent."},
        },
        variables={"who": "<VIPs>"},
    )
    decision = start(doc)
    campaign, sent = decision.effects
    assert campaign.kind == "campaign"
    rec = _record(decision)
    command = campaign_command(rec, campaign)
    assert command.campaign_id == f"flow:{campaign.id}"  # the same on every replay
    assert command.segment.tags == ("vip",)
    assert command.segment.stage == "won"
    assert command.content.text == "Sale for &lt;VIPs&gt; & friends"  # type: ignore[union-attr]
    assert command.subject().startswith("cmd.crm.start_campaign.v1.")
    assert sent.data["text"] == "Sent."


def _record(decision: Decision) -> RunRecorded:
    state = decision.state
    return RunRecorded(
        session="s",
        run_id=state.run_id,
        flow_id=state.flow_id,
        revision=1,
        conversation=state.conversation,
        status=state.status,
        input_id="i0",
        input_kind="start",
        effects=decision.effects,
    )
