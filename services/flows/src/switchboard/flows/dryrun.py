"""Playing a flow against a scripted transcript without sending anything (pure): each
input's decision, as the live service would make it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.flows import FlowConversation
from switchboard.flows.document import FlowDocument
from switchboard.flows.engine import (
    ContactFacts,
    Decision,
    Input,
    WebhookResult,
    decide,
    new_run,
)


class WebhookReply(BaseModel):
    """What the receiver of the run's pending webhook call answers (nothing is called)."""

    model_config = ConfigDict(extra="forbid")
    status: int | None = Field(200, ge=100, le=599, description="None: no answer (a timeout)")
    body: Any = None


class ContactSeen(BaseModel):
    """The CRM contact as the dry run's conditions see it."""

    model_config = ConfigDict(extra="forbid")
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    stage: str | None = None


class Said(BaseModel):
    """One scripted input: a text, a button press, the run's pending timer, a release, or
    the answer to the run's pending webhook call."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    button: str | None = Field(None, description="callback data of the pressed button")
    timer: bool = Field(False, description="the timer the run waits for fires")
    release: bool = Field(False, description="a person releases a handed-off run")
    webhook: WebhookReply | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        given = [
            self.text is not None,
            self.button is not None,
            self.timer,
            self.release,
            self.webhook is not None,
        ]
        if sum(given) != 1:
            raise ValueError(
                "each transcript entry is exactly one of text, button, timer, release, webhook"
            )
        return self


class DryRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start_text: str = Field("/start", description="the message that starts the run")
    channel: Channel = Channel.TELEGRAM
    transcript: list[Said] = Field(default_factory=list, max_length=200)
    contact: ContactSeen = Field(default_factory=ContactSeen)
    revision: int | None = Field(None, ge=1, description="default: the latest revision")


def play(doc: FlowDocument, request: DryRun) -> list[dict[str, Any]]:
    """Each input with the decision it got (``ignored`` when the run would not take it)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    conv = FlowConversation(
        channel=request.channel, account="dry-run", chat_id="1", sender_id="1", first_name="Ada"
    )
    state = new_run("dry-run", "dry-run", 1, doc, conv)
    seen = request.contact
    facts = ContactFacts(attributes=seen.attributes, tags=tuple(seen.tags), stage=seen.stage)
    out: list[dict[str, Any]] = []
    start = Input(kind="start", id="0", at=t0, text=request.start_text)
    decision = decide(state, doc, start, facts)
    assert decision is not None
    out.append(_view({"start": request.start_text}, decision))
    state = decision.state
    for i, said in enumerate(request.transcript, start=1):
        at = t0 + timedelta(minutes=i)
        if said.text is not None:
            inp = Input(kind="text", id=str(i), at=at, text=said.text)
        elif said.button is not None:
            inp = Input(kind="button", id=str(i), at=at, data=said.button)
        elif said.timer:
            timer = state.waiting.timer_id if state.waiting else None
            due = state.waiting.due_at if state.waiting and state.waiting.due_at else at
            inp = Input(kind="timer", id=str(i), at=due, timer_id=timer or "none")
        elif said.webhook is not None:
            call = state.waiting.timer_id if state.waiting else None
            reply = said.webhook
            result = WebhookResult(
                reply.status,
                body=reply.body,
                error=None if reply.status is not None else "no answer (dry run)",
            )
            inp = Input(kind="webhook", id=str(i), at=at, timer_id=call or "none", result=result)
        else:
            inp = Input(kind="release", id=str(i), at=at)
        decision = decide(state, doc, inp, facts)
        entry = said.model_dump(exclude_defaults=True)
        if decision is None:
            out.append({"input": entry, "ignored": True, "status": state.status.value})
            continue
        out.append(_view(entry, decision))
        state = decision.state
    return out


def _view(said: dict[str, Any], decision: Decision) -> dict[str, Any]:
    state = decision.state
    return {
        "input": said,
        "steps": [s.model_dump(mode="json") for s in decision.steps],
        "effects": [e.model_dump(mode="json") for e in decision.effects],
        "status": state.status.value,
        "current_step": state.cursor,
        "variables": state.variables,
        "tags": list(state.tags),
    }
