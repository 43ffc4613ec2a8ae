"""Reading runs back: the latest state of each run, and one run's history."""

from __future__ import annotations

from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.events import decode_message
from switchboard.events.catalog.flows import RunRecorded
from switchboard.flows.sessions import STREAM, run_filter
from switchboard.runtime import pii
from switchboard.runtime.aggregates import read_filter
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import BatchPull, ConsumerError, pending_after, stream_seq

ALL_RUNS = "flows.run_recorded.v1.*.*"


def run_view(rec: RunRecorded, seq: int) -> dict[str, Any]:
    """A run as the API shows it."""
    return {
        "id": rec.run_id,
        "flow_id": rec.flow_id,
        "revision": rec.revision,
        "session": rec.session,
        "conversation": rec.conversation.model_dump(mode="json"),
        "status": rec.status.value,
        "current_step": rec.cursor,
        "waiting": rec.waiting.model_dump(mode="json") if rec.waiting else None,
        "variables": rec.variables,
        "tags": list(rec.tags),
        "decisions": rec.decision,
        "version": seq,
    }


async def latest_runs(
    bus: Bus, workspace: str, flow_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """The current state of every run of a workspace (the last record on each run's subject).

    Read again from the start when a delivery went missing (a gap in consumer sequences:
    nothing acknowledges these, so one pushed to an expired pull request is simply gone).
    """
    for _ in range(3):
        found = await _scan(bus, workspace, flow_id, limit)
        if found is not None:
            return found
    raise TimeoutError("could not list the runs without a gap; try again")


async def _scan(
    bus: Bus, workspace: str, flow_id: str | None, limit: int
) -> list[dict[str, Any]] | None:
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        filter_subject=ALL_RUNS,
        mem_storage=True,
        inactive_threshold=5.0,
    )
    pull = await BatchPull(bus, STREAM, config).start()  # ephemeral: deleted by close
    out: list[dict[str, Any]] = []
    try:
        while len(out) < limit:
            try:
                msgs = await pull.fetch(256, timeout=0.5)
            except TimeoutError:
                break
            except ConsumerError:  # a delivery lost on the way (or the consumer gone)
                return None
            await pii.open_messages(msgs)  # a run's record is sealed (the customer's data)
            for m in msgs:
                decoded = decode_message(m.subject, dict(m.headers or {}), m.data)
                rec = decoded.model
                if not isinstance(rec, RunRecorded) or decoded.envelope.workspace_id != workspace:
                    continue
                if flow_id is None or rec.flow_id == flow_id:
                    out.append(run_view(rec, stream_seq(m)))
            if not msgs or pending_after(msgs[-1]) == 0:
                break
    finally:
        await pull.close()
    return out[:limit]


async def run_history(bus: Bus, workspace: str, run_id: str) -> dict[str, Any] | None:
    """A run's state and every decision it made (None: no such run in this workspace)."""
    stored = await read_filter(bus, STREAM, run_filter(run_id))
    stored = [s for s in stored if s.decoded.envelope.workspace_id == workspace]
    if not stored:
        return None
    last = stored[-1]
    assert isinstance(last.decoded.model, RunRecorded)
    view = run_view(last.decoded.model, last.seq)
    history = []
    for s in stored:
        rec = s.decoded.model
        assert isinstance(rec, RunRecorded)
        history.append(
            {
                "decision": rec.decision,
                "at": s.decoded.envelope.time.isoformat(),
                "input": {"id": rec.input_id, "kind": rec.input_kind},
                "steps": [step.model_dump(mode="json") for step in rec.steps],
                "effects": [e.model_dump(mode="json") for e in rec.effects],
                "status": rec.status.value,
            }
        )
    view["history"] = history
    return view
