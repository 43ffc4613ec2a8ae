"""What a conversation's input does to its runs (pure): which run takes it, which flow it
starts, and the ``flows.run_recorded`` events that say so; and under which session id.

Session ids are in every ``FLOWS`` subject, and a chat id is a phone number on WhatsApp, so a
session id is keyed with the deployment's identity pepper (``runtime.identity``): nobody
reading subjects can compute a person's session from their number. Sessions recorded before
they were keyed have the legacy, unkeyed id; ``resolve`` keeps a run in progress under it
until that run ends, then moves the conversation to its keyed id (with its memory: inputs
consumed, not a new conversation). So the legacy lookup is needed while any conversation of
the deployment has records only under its legacy id (a waiting or handed-off run can wait
indefinitely, and an ended one still tells that the conversation is not new); a deployment
whose first run was recorded keyed has none and never reads a legacy id (``SessionLookup``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.flows import FlowConversation, RunRecorded, RunStatus, StepRecord
from switchboard.events.ids import stable_hash
from switchboard.events.subjects import token
from switchboard.flows.document import FlowDocument
from switchboard.flows.engine import ContactFacts, Decision, Input, RunState, decide, new_run
from switchboard.flows.triggers import (
    Published,
    command_start,
    event_start,
    in_scope,
    other_start,
)
from switchboard.runtime.aggregates import Stored
from switchboard.runtime.identity import keyed_hash

RECENT_INPUTS = 32
STREAM = "FLOWS"


def session_id(workspace: str, channel: Channel | str, account: str, chat_id: str) -> str:
    """The key of one conversation's runs in ``FLOWS``: keyed (HMAC with the identity
    pepper), as it is a subject token and the chat id may be a phone number."""
    return "cs_" + keyed_hash("session", workspace, str(channel), account, chat_id)[:24]


def legacy_session_id(workspace: str, channel: Channel | str, account: str, chat_id: str) -> str:
    """The unkeyed key conversations had before session ids were keyed (anyone can compute
    it from a phone number): only ever looked up, to continue what was recorded under it."""
    return "cs_" + stable_hash("session", workspace, str(channel), account, chat_id)[:24]


@dataclass(frozen=True)
class Resolved:
    """Where a conversation's next record goes and what it continues from."""

    session: str  # the session id the next record is appended under
    current: Stored | None  # the conversation's last record (under either id), None: none
    expected: int  # the last sequence on ``session``'s subjects (0: nothing there yet)


def resolve(
    keyed: str, legacy: str | None, on_keyed: Stored | None, on_legacy: Stored | None
) -> Resolved:
    """Under which id a conversation goes on, from the last record under each of its ids.

    Keyed once anything is recorded under the keyed id. A run still in progress under the
    legacy id continues there (its timers and hand-back name that id); once it ended, the
    next record goes under the keyed id, planned on the legacy record (its consumed inputs,
    and the conversation is not new), appended as the keyed id's first.
    """
    if on_keyed is not None or on_legacy is None or legacy is None:
        return Resolved(keyed, on_keyed, on_keyed.seq if on_keyed else 0)
    rec = on_legacy.decoded.model
    assert isinstance(rec, RunRecorded)
    if rec.status is not RunStatus.ENDED:
        return Resolved(legacy, on_legacy, on_legacy.seq)
    return Resolved(keyed, on_legacy, 0)


def session_filter(session: str) -> str:
    """Every run of one conversation (the unit of ordering and concurrency)."""
    return f"flows.run_recorded.v1.{token(session)}.*"


def run_filter(run_id: str) -> str:
    """One run's history."""
    return f"flows.run_recorded.v1.*.{token(run_id)}"


def new_run_id(session: str, input_id: str) -> str:
    return "rn_" + stable_hash("run", session, input_id)[:24]


def consumed(inp: Input, ids: Iterable[str]) -> bool:
    """Whether ``inp`` is among the inputs consumed (``ids``), under its id or an earlier one."""
    return not {inp.id, *inp.known_as}.isdisjoint(ids)


def state_of(rec: RunRecorded) -> RunState:
    """The state of the run a record ends in (its variables copied: the engine changes them)."""
    return RunState(**{**_state_fields(rec), "variables": dict(rec.variables)})


def _state_fields(run: RunState | RunRecorded) -> dict[str, Any]:
    """A run's state: the fields of RunState, which ``flows.run_recorded`` carries by name."""
    return {f.name: getattr(run, f.name) for f in fields(RunState)}


def plan(
    *,
    session: str,
    current: RunRecorded | None,
    active_doc: FlowDocument | None,
    published: list[Published],
    inp: Input,
    conversation: FlowConversation,
    facts: ContactFacts | None = None,
) -> list[RunRecorded]:
    """The events to append, in order (none: the input changes nothing).

    ``current`` is the conversation's last record and ``active_doc`` the document of its run
    when that run is still active (on the revision it started with).
    """
    recent = current.recent_inputs if current else ()
    if consumed(inp, recent):
        return []
    active = current if current is not None and current.status is not RunStatus.ENDED else None
    candidates = [
        p for p in published if in_scope(p.doc, conversation.channel, conversation.account)
    ]
    start = command_start(candidates, inp.text) if inp.kind == "text" else None
    if start is None and active is not None and active_doc is not None:
        decision = decide(state_of(active), active_doc, inp, facts)
        if decision is not None:
            return [_record(session, decision, inp, active, recent, inp.kind)]
    if start is None and inp.kind in ("text", "button"):
        start = other_start(
            candidates,
            text=inp.text if inp.kind == "text" else None,
            button=inp.data if inp.kind == "button" else None,
            new_conversation=current is None,
            referral=inp.referral,
        )
    if inp.kind == "event" and inp.event is not None:
        if active is not None:
            return []  # an event never cuts a running flow short
        start = event_start(candidates, inp.event, inp.data)
    if start is None:
        return []
    records: list[RunRecorded] = []
    if active is not None:
        # The replaced run ends on its own subject, under an id of its own: a crash after this
        # append still leaves the input unconsumed, so its redelivery starts the new run.
        ended = active.model_copy(
            update={
                "status": RunStatus.ENDED,
                "cursor": None,
                "waiting": None,
                "input_id": f"{inp.id}#replaced",
                "input_kind": "replaced",
                "steps": (StepRecord(step=active.cursor or "", type="run", outcome="replaced"),),
                "effects": (),
                "decision": active.decision + 1,
            }
        )
        records.append(ended)
    run = new_run(
        new_run_id(session, inp.id), start.flow.flow_id, start.flow.revision, start.flow.doc,
        conversation,
    )  # fmt: skip
    decision = decide(run, start.flow.doc, replace(inp, kind="start"), facts)
    assert decision is not None  # a start always decides
    records.append(_record(session, decision, inp, None, recent, f"start:{start.trigger}"))
    return records


def _record(
    session: str,
    decision: Decision,
    inp: Input,
    before: RunRecorded | None,
    recent: tuple[str, ...],
    kind: str,
) -> RunRecorded:
    return RunRecorded(
        session=session,
        **_state_fields(decision.state),
        input_id=inp.id,
        input_kind=kind,
        steps=decision.steps,
        effects=decision.effects,
        decision=before.decision + 1 if before else 1,
        recent_inputs=(*recent, inp.id)[-RECENT_INPUTS:],
    )
