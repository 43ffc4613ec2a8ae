"""What the pure decision tests of flows share: the clock, a conversation, a flow built from
its steps, and the start of a run of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.flows import FlowConversation
from switchboard.flows.document import FlowDocument, validate
from switchboard.flows.engine import ContactFacts, Decision, Input, decide, new_run

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONV = FlowConversation(
    channel=Channel.TELEGRAM, account="demo", chat_id="7", sender_id="7", first_name="Ada"
)


def flow(steps: dict[str, Any], start: str = "a", **extra: Any) -> FlowDocument:
    return validate(
        {"name": "t", "triggers": [{"type": "start"}], "start": start, "steps": steps, **extra}
    )


def start(doc: FlowDocument, text: str = "/start", facts: ContactFacts | None = None) -> Decision:
    """The first decision of a new run of ``doc`` (started by ``text``)."""
    run = new_run("r1", "f1", 1, doc, CONV)
    decision = decide(run, doc, Input("start", "i0", T0, text=text), facts)
    assert decision is not None
    return decision
