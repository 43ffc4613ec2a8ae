"""Flow events (stream ``FLOWS``, kept forever) and flow timers (stream ``FLOW_TIMERS``).

A flow is a bot scenario: a versioned JSON document. Every revision, publication and
archival is an event on ``flows.<event>.v1.<flow_id>``, so every version is kept.

A conversation's runs are event-sourced too: each decision of the flows service is one
``flows.run_recorded`` on ``flows.run_recorded.v1.<session>.<run_id>``. Appends use the
expected last sequence over ``flows.run_recorded.v1.<session>.*``, so the runs of one
conversation advance one decision at a time, in order, whichever instance decides; each
run still has its own subject (its history). The event carries the run's whole state after
the decision and the effects it decided, with deterministic ids, so an instance that dies
between recording and publishing them publishes the same ids again.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field

from switchboard.events.base import Command, Event
from switchboard.events.catalog.common import Channel, Value
from switchboard.events.registry import register


class _FlowEvent(Event):
    about: ClassVar[str] = "flow_id"

    flow_id: str = Field(min_length=1)


@register("flows.flow_saved", 1)
class FlowSaved(_FlowEvent):
    """A new revision of a flow's document was saved (revision 1 creates the flow). The
    document was valid against the published flow schema when saved."""

    revision: int = Field(ge=1)
    document: dict[str, Any]
    by: str | None = None


@register("flows.flow_published", 1)
class FlowPublished(_FlowEvent):
    """A revision became the live one: new runs start on it; running ones keep theirs."""

    revision: int = Field(ge=1)
    by: str | None = None


@register("flows.flow_archived", 1)
class FlowArchived(_FlowEvent):
    """The flow stopped starting new runs; its revisions and runs are kept."""

    by: str | None = None


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"  # for a reply, a button or a timer
    HANDED_OFF = "handed_off"  # a person has the conversation; the flow is paused
    ENDED = "ended"


class FlowConversation(Value):
    """The conversation a run talks in, and the customer in it."""

    channel: Channel
    account: str = Field(min_length=1)
    chat_id: str = Field(min_length=1)
    sender_id: str = Field(min_length=1, description="the customer's provider user id")
    first_name: str | None = None
    username: str | None = None


class Waiting(Value):
    """What a waiting run waits for at ``step``."""

    step: str = Field(min_length=1)
    kind: Literal["reply", "button", "delay", "handoff", "webhook"]
    attempts: int = Field(0, ge=0, description="invalid answers so far (ask)")
    timer_id: str | None = Field(None, description="the timer (or the webhook call) awaited")
    due_at: datetime | None = None
    buttons: dict[str, str] = Field(
        default_factory=dict, description="callback data -> next step of the buttons shown"
    )


class StepRecord(Value):
    """What one step did in a decision (the run's history, and the dry-run's answer)."""

    step: str
    type: str
    outcome: str = Field(description="e.g. sent, waiting, invalid, matched:<case>, ended")
    detail: dict[str, Any] = Field(default_factory=dict)


class RunEffect(Value):
    """Something the decision does outside the run, with an id that makes it idempotent."""

    id: str = Field(min_length=1)
    kind: Literal[
        "send",
        "timer",
        "tag",
        "lead_stage",
        "lead_assign",
        "attribute",
        "webhook",
        "answer",
        "campaign",
    ]
    data: dict[str, Any] = Field(default_factory=dict)


@register("flows.run_recorded", 1)
class RunRecorded(Event):
    """One decision of a run: the input it consumed, the steps it took, the effects it
    decided and the run's whole state afterwards (the last event is the current state)."""

    session: str = Field(min_length=1, description="the conversation's key in FLOWS")
    run_id: str = Field(min_length=1)
    flow_id: str = Field(min_length=1)
    revision: int = Field(ge=1)
    conversation: FlowConversation
    status: RunStatus
    cursor: str | None = Field(None, description="the step the run is at (None: ended)")
    waiting: Waiting | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    tags: tuple[str, ...] = ()
    input_id: str = Field(min_length=1, description="what was consumed (ce-id or timer id)")
    input_kind: str = Field(min_length=1)
    steps: tuple[StepRecord, ...] = ()
    effects: tuple[RunEffect, ...] = ()
    counter: int = Field(0, ge=0, description="effects decided so far (for their ids)")
    decision: int = Field(1, ge=1, description="1 for the run's first decision, then +1")
    recent_inputs: tuple[str, ...] = Field(default=(), description="inputs already consumed")

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.session, self.run_id)

    def ce_subject(self) -> str:
        return self.run_id

    def deterministic_id(self) -> str:
        return f"run:{self.session}:{self.input_id}"


@register("flows.fire_timer", 1)
class FireTimer(Command):
    """A run's delay or reply timeout is due. Published as a JetStream message schedule
    (``Nats-Schedule: @at <due_at>``) that the server delivers at ``due_at``; a timer the run
    no longer waits for is ignored."""

    session: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    timer_id: str = Field(min_length=1)
    due_at: datetime

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.session,)

    def ce_subject(self) -> str:
        return self.run_id

    def deterministic_id(self) -> str:
        return f"timer:{self.timer_id}"


@register("flows.fire_schedule", 1)
class FireSchedule(Command):
    """A flow's schedule trigger is due: the flow starts in the conversations of its scope
    that run no flow. Published as a JetStream message schedule for ``due_at`` (like
    ``flows.fire_timer``); one for a revision no longer published is ignored."""

    about: ClassVar[str] = "flow_id"

    flow_id: str = Field(min_length=1)
    revision: int = Field(ge=1)
    trigger: int = Field(ge=0, description="the index of the schedule trigger in the flow")
    due_at: datetime

    def deterministic_id(self) -> str:
        return f"schedule:{self.flow_id}:{self.revision}:{self.trigger}:{self.due_at.isoformat()}"


@register("flows.start_runs", 1)
class StartRuns(Command):
    """Start ``flow_id`` in these conversations (one batch of a segment the CRM expanded for
    a ``crm.start_flow``); a conversation that runs a flow already is left alone."""

    caller_keyed: ClassVar[bool] = True  # request ids are per workspace

    request_id: str = Field(min_length=1)
    flow_id: str = Field(min_length=1)
    revision: int = Field(ge=1)
    batch: int = Field(ge=0)
    conversations: tuple[FlowConversation, ...]
    final: bool = Field(description="the last batch of the request")

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.flow_id, str(self.batch))

    def ce_subject(self) -> str:
        return self.flow_id

    def deterministic_id(self) -> str:
        return f"start-runs:{self.request_id}:{self.batch}"
