"""Which published flow an input starts (pure).

Commands (``/start [payload]``, ``/help``) always start their flow, replacing a running one
(that is what a user typing ``/start`` means). Otherwise a running flow gets the input
first; only what it does not take can start a flow by button data, referral, keyword, or as
the first message of a conversation never seen before. Events (Viber
``conversation_started``, a CRM lead stage change or tag) start a flow only in a
conversation with no running flow: they never cut one short.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from switchboard.events.catalog.common import Channel
from switchboard.flows.document import (
    ButtonTrigger,
    CommandTrigger,
    ConversationStartedTrigger,
    FirstMessageTrigger,
    FlowDocument,
    KeywordTrigger,
    LeadStageTrigger,
    ReferralTrigger,
    ScheduleTrigger,
    StartTrigger,
    TagAddedTrigger,
    Trigger,
)

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Published:
    """The live revision of a flow."""

    flow_id: str
    revision: int
    doc: FlowDocument
    since: datetime | None = None  # when this revision was published


@dataclass(frozen=True)
class Start:
    flow: Published
    trigger: str  # e.g. "start:promo", "command:help", "keyword:price"


# A trigger's match: its label in the run's record, and whether it matched exactly (a
# catch-all trigger, with no payload, context or campaign, matches only as a fallback).
Match = tuple[str, bool]


def parse_command(text: str | None) -> tuple[str, str | None] | None:
    """``/start abc`` -> ("start", "abc"); ``/help@my_bot`` -> ("help", None)."""
    if not text:
        return None
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    payload = (match.group(2) or "").strip() or None
    return match.group(1).lower(), payload


def in_scope(doc: FlowDocument, channel: Channel, account: str) -> bool:
    """Whether ``doc`` runs on the account: one its ``channels`` name, or without them any
    bot or number. A Telegram user account (``mtproto``) is a person: a flow answers as it
    only when its ``channels`` name it (it reads the private chats it writes to, and an
    unscoped keyword flow would have started answering its customers as the person)."""
    if not doc.channels:
        return channel is not Channel.MTPROTO
    return any(
        s.channel == channel and (s.account is None or s.account == account) for s in doc.channels
    )


def command_start(flows: Iterable[Published], text: str | None) -> Start | None:
    """The flow a command starts: an exact ``/start`` payload wins over a payload-less one."""
    parsed = parse_command(text)
    if parsed is None:
        return None
    command, payload = parsed

    def match(_: Published, trig: Trigger) -> Match | None:
        if isinstance(trig, StartTrigger) and command == "start":
            if trig.payload is None:
                return "start", False
            return (f"start:{payload}", True) if trig.payload == payload else None
        if isinstance(trig, CommandTrigger) and trig.command == command:
            return f"command:{command}", True
        return None

    return _best(flows, match)


def event_start(flows: Iterable[Published], event: str, data: str | None) -> Start | None:
    """The flow an event starts: ``conversation_started`` (data: its context; an exact
    context wins over a context-less trigger), ``lead_stage`` (the stage), ``tag_added``."""

    def match(flow: Published, trig: Trigger) -> Match | None:
        if isinstance(trig, ConversationStartedTrigger) and event == "conversation_started":
            if trig.context is None:
                return "conversation_started", False
            return (f"conversation_started:{data}", True) if trig.context == data else None
        if isinstance(trig, LeadStageTrigger) and event == "lead_stage" and trig.stage == data:
            return f"lead_stage:{data}", True
        if isinstance(trig, TagAddedTrigger) and event == "tag_added" and trig.tag == data:
            return f"tag_added:{data}", True
        if isinstance(trig, ScheduleTrigger) and event == "schedule" and flow.flow_id == data:
            return "schedule", True
        return None

    return _best(flows, match)


def referral_start(
    flows: Iterable[Published], referral: tuple[str, str | None] | None
) -> Start | None:
    """The flow a message's referral starts (an exact campaign wins over any campaign)."""
    if referral is None:
        return None
    source, campaign = referral

    def match(_: Published, trig: Trigger) -> Match | None:
        if not isinstance(trig, ReferralTrigger):
            return None
        if trig.source is not None and trig.source != source:
            return None
        if trig.campaign is None:
            return f"referral:{source}", False
        return (f"referral:{source}:{campaign}", True) if trig.campaign == campaign else None

    return _best(flows, match)


def trigger_keys(doc: FlowDocument) -> set[str]:
    """The exact triggers of ``doc`` another flow can hold too (a command, a keyword, a
    button's data, a referral, the first message, a Viber context)."""
    keys: set[str] = set()
    for t in doc.triggers:
        if isinstance(t, StartTrigger):
            keys.add(f"start:{t.payload or '*'}")
        elif isinstance(t, CommandTrigger):
            keys.add(f"command:{t.command}")
        elif isinstance(t, KeywordTrigger):
            keys |= {f"keyword:{k.casefold()}" for k in t.keywords}
        elif isinstance(t, ButtonTrigger):
            keys.add(f"button:{t.data}")
        elif isinstance(t, FirstMessageTrigger):
            keys.add("first_message")
        elif isinstance(t, ReferralTrigger):
            keys.add(f"referral:{t.source or '*'}:{t.campaign or '*'}")
        elif isinstance(t, ConversationStartedTrigger):
            keys.add(f"conversation_started:{t.context or '*'}")
    return keys


def overlaps(flow_id: str, doc: FlowDocument, others: Iterable[Published]) -> list[dict[str, str]]:
    """The triggers ``doc`` shares with other published flows: an input both match starts
    one of them only (the first flow by id), so a publish says which (pure)."""
    mine = trigger_keys(doc)
    return [
        {"trigger": key, "flow_id": other.flow_id}
        for other in others
        if other.flow_id != flow_id
        for key in sorted(mine & trigger_keys(other.doc))
    ]


def _best(
    flows: Iterable[Published], match: Callable[[Published, Trigger], Match | None]
) -> Start | None:
    """The first flow with a trigger matching exactly, else the first with a catch-all."""
    fallback: Start | None = None
    for flow in flows:
        for trig in flow.doc.triggers:
            found = match(flow, trig)
            if found is None:
                continue
            label, exact = found
            if exact:
                return Start(flow, label)
            if fallback is None:
                fallback = Start(flow, label)
    return fallback


def other_start(
    flows: Iterable[Published],
    *,
    text: str | None,
    button: str | None,
    new_conversation: bool,
    referral: tuple[str, str | None] | None = None,
) -> Start | None:
    """A flow started by a button's data, a message's referral, a keyword, or a new
    conversation's first message."""
    flows = list(flows)
    for flow in flows:
        for trig in flow.doc.triggers:
            if isinstance(trig, ButtonTrigger) and button is not None and trig.data == button:
                return Start(flow, f"button:{button}")
    by_referral = referral_start(flows, referral)
    if by_referral is not None:
        return by_referral
    for flow in flows:
        for trig in flow.doc.triggers:
            if isinstance(trig, KeywordTrigger) and text:
                for keyword in trig.keywords:
                    if re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", text, re.IGNORECASE):
                        return Start(flow, f"keyword:{keyword}")
    if new_conversation and button is None:
        for flow in flows:
            if any(isinstance(t, FirstMessageTrigger) for t in flow.doc.triggers):
                return Start(flow, "first_message")
    return None
