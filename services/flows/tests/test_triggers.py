"""Triggers beyond commands and keywords: Viber ``conversation_started`` with its context, a
message's referral (WhatsApp ad), CRM events (lead stage changed, tag added); events start
a flow only where no flow runs, and find the contact's conversations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import (
    ContactCreated,
    ContactIdentityLinked,
    ContactUpdated,
    Identity,
    LeadStageChanged,
)
from switchboard.events.catalog.flows import FlowConversation, RunStatus
from switchboard.flows.document import validate
from switchboard.flows.effects import conversations
from switchboard.flows.engine import Input
from switchboard.flows.runner import crm_trigger
from switchboard.flows.sessions import plan
from switchboard.flows.triggers import (
    Published,
    event_start,
    other_start,
    overlaps,
    referral_start,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONV = FlowConversation(channel=Channel.VIBER, account="v", chat_id="u1", sender_id="u1")


def published(flow_id: str, triggers: list[dict[str, Any]]) -> Published:
    doc = validate(
        {
            "name": flow_id,
            "triggers": triggers,
            "start": "a",
            "steps": {"a": {"type": "send", "text": flow_id, "buttons": [
                [{"text": "ok", "data": "ok", "next": "b"}]]}, "b": {"type": "end"}},
        }
    )  # fmt: skip
    return Published(flow_id, 1, doc)


FLOWS = [
    published("opened", [{"type": "conversation_started"}]),
    published("promo", [{"type": "conversation_started", "context": "promo"}]),
    published("any-ad", [{"type": "referral", "source": "ad"}]),
    published("ad-7", [{"type": "referral", "campaign": "7"}]),
    published("won", [{"type": "lead_stage", "stage": "won"}]),
    published("vip", [{"type": "tag_added", "tag": "vip"}]),
]


def names(start: object) -> str | None:
    return getattr(getattr(start, "flow", None), "flow_id", None)


def test_events_pick_their_flow() -> None:
    assert names(event_start(FLOWS, "conversation_started", None)) == "opened"
    assert names(event_start(FLOWS, "conversation_started", "promo")) == "promo"
    assert names(event_start(FLOWS, "conversation_started", "other")) == "opened"
    assert names(event_start(FLOWS, "lead_stage", "won")) == "won"
    assert event_start(FLOWS, "lead_stage", "lost") is None
    assert names(event_start(FLOWS, "tag_added", "vip")) == "vip"
    assert event_start(FLOWS, "tag_added", "other") is None


def test_a_referral_starts_its_flow_exact_campaign_first() -> None:
    assert names(referral_start(FLOWS, ("ad", "7"))) == "ad-7"
    assert names(referral_start(FLOWS, ("ad", "8"))) == "any-ad"
    assert referral_start(FLOWS, ("deep_link", "8")) is None
    assert referral_start(FLOWS, None) is None
    # a referral wins over a first message; without one, nothing here starts
    start = other_start(FLOWS, text="hi", button=None, new_conversation=True, referral=("ad", "9"))
    assert names(start) == "any-ad"
    assert other_start(FLOWS, text="hi", button=None, new_conversation=True) is None


def test_an_event_starts_a_flow_only_where_none_runs() -> None:
    opened = Input("event", "e1", T0, event="conversation_started", data="promo")
    (started,) = plan(
        session="s", current=None, active_doc=None, published=FLOWS, inp=opened, conversation=CONV
    )
    assert started.flow_id == "promo"
    assert started.status is RunStatus.WAITING
    won = Input("event", "e2", T0, event="lead_stage", data="won")
    doc = FLOWS[1].doc
    assert plan(
        session="s", current=started, active_doc=doc, published=FLOWS, inp=won, conversation=CONV
    ) == []  # fmt: skip
    ended = started.model_copy(update={"status": RunStatus.ENDED, "waiting": None})
    (next_run,) = plan(
        session="s", current=ended, active_doc=None, published=FLOWS, inp=won, conversation=CONV
    )
    assert next_run.flow_id == "won"
    assert next_run.input_kind == "start:lead_stage:won"


def test_crm_events_that_trigger_and_the_contacts_conversations() -> None:
    stage = LeadStageChanged(lead_id="l", contact_id="c", from_stage="new", to_stage="won")
    assert crm_trigger(stage) == ("c", [("lead_stage", "won")])
    tags = ContactUpdated(contact_id="c", tags_added=("vip", "x"))
    assert crm_trigger(tags) == ("c", [("tag_added", "vip"), ("tag_added", "x")])
    assert crm_trigger(ContactUpdated(contact_id="c", tags_removed=("vip",))) is None
    tg = Identity(channel=Channel.TELEGRAM, external_id="42", account="bot", username="ada")
    events = [
        ContactCreated(
            contact_id="c", display_name="Ada", identities=(tg,), source_channel=Channel.TELEGRAM
        ),
        ContactIdentityLinked(
            contact_id="c",
            identity=Identity(channel=Channel.WHATSAPP, external_id="4915", account="wa"),
            matched_by="phone",
        ),
        ContactIdentityLinked(  # no account: no conversation to start anything in
            contact_id="c",
            identity=Identity(channel=Channel.VIBER, external_id="v9"),
            matched_by="manual",
        ),
    ]
    found = conversations(list(events))
    assert [(c.channel, c.account, c.chat_id, c.first_name) for c in found] == [
        (Channel.TELEGRAM, "bot", "42", "Ada"),
        (Channel.WHATSAPP, "wa", "4915", "Ada"),
    ]
    # A contact founded without a name takes the first linked identity's, as the CRM does.
    nameless = events[0].model_copy(update={"display_name": None})
    named = ContactIdentityLinked(
        contact_id="c",
        identity=Identity(channel=Channel.WHATSAPP, external_id="4915", account="wa"),
        matched_by="phone",
        display_name="Max",
    )
    renamed = ContactIdentityLinked(
        contact_id="c",
        identity=Identity(channel=Channel.VIBER, external_id="v9", account="vb"),
        matched_by="phone",
        display_name="Someone else",
    )
    assert {c.first_name for c in conversations([nameless, named, renamed])} == {"Max"}


def test_a_publish_names_the_exact_triggers_other_published_flows_hold() -> None:
    """Two published flows with one keyword (any case), one command or one button's data:
    an input both match starts the first by id only, and nothing said so (found publishing
    two keyword flows on ``just up``, both answered 200). The publish answer now lists each
    shared trigger with the flow holding it; triggers that differ are no overlap."""
    mine = published("fl_b", [{"type": "keyword", "keywords": ["Price", "menu"]},
                              {"type": "start"}, {"type": "button", "data": "quote"}])  # fmt: skip
    others = [
        mine,  # itself, as the live view lists it after the publish
        published("fl_a", [{"type": "keyword", "keywords": ["price"]}, {"type": "start"}]),
        published(
            "fl_c", [{"type": "start", "payload": "ad7"}, {"type": "button", "data": "quote"}]
        ),
        published("fl_d", [{"type": "command", "command": "help"}]),
    ]
    assert overlaps("fl_b", mine.doc, others) == [
        {"trigger": "keyword:price", "flow_id": "fl_a"},
        {"trigger": "start:*", "flow_id": "fl_a"},
        {"trigger": "button:quote", "flow_id": "fl_c"},
    ]
    assert overlaps("fl_d", others[3].doc, others) == []


def test_a_user_account_runs_only_flows_that_name_it() -> None:
    """A Telegram user account is a person: it reads the private chats it writes to, and a
    keyword flow without ``channels`` (every bot and number) started answering its
    customers as the person. It runs a flow only when the flow's ``channels`` name it."""
    keyword = [{"type": "keyword", "keywords": ["price"]}]
    anywhere = published("anywhere", keyword)
    user = FlowConversation(channel=Channel.MTPROTO, account="sales-1", chat_id="7", sender_id="7")
    bot = FlowConversation(channel=Channel.TELEGRAM, account="shop", chat_id="7", sender_id="7")
    asked = Input("text", "t1", T0, text="price?")
    assert plan(session="s", current=None, active_doc=None, published=[anywhere], inp=asked,
                conversation=user) == []  # fmt: skip
    (on_bot,) = plan(session="s", current=None, active_doc=None, published=[anywhere],
                     inp=asked, conversation=bot)  # fmt: skip
    assert on_bot.flow_id == "anywhere"
    # (no buttons: a user account sends none)
    named = validate({**anywhere.doc.model_dump(mode="json", exclude_none=True),
                      "channels": [{"channel": "mtproto", "account": "sales-1"}],
                      "steps": {"a": {"type": "send", "text": "price list"}}})  # fmt: skip
    (on_user,) = plan(session="s", current=None, active_doc=None,
                      published=[Published("named", 1, named)], inp=asked,
                      conversation=user)  # fmt: skip
    assert on_user.flow_id == "named"
