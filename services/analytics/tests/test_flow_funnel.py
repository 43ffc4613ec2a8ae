"""The funnel row of a run from its records, in any order: the newest decision's state wins,
the start is the earliest record, a hand-off anywhere counts, a replaced run is not
completed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from switchboard.analytics.flows_projector import run_row
from switchboard.analytics.items import Item
from switchboard.events import Envelope
from switchboard.events.catalog.flows import RunRecorded

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(decision: int, status: str, steps: list[tuple[str, str, str]], **kw: Any) -> Item:
    model = RunRecorded.model_validate(
        {
            "session": "s",
            "run_id": "r",
            "flow_id": "f",
            "revision": 1,
            "conversation": {
                "channel": "telegram", "account": "a", "chat_id": "1", "sender_id": "1",
            },
            "status": status,
            "input_id": f"i{decision}",
            "input_kind": kw.pop("input_kind", "text"),
            "decision": decision,
            "steps": [{"step": s, "type": t, "outcome": o} for s, t, o in steps],
        }
    )  # fmt: skip
    at = T0 + timedelta(seconds=decision)
    env = Envelope(id=f"e{decision}", type="flows.run_recorded.v1", source="t", time=at)
    return Item(decision, at, env, "flows.run_recorded", model, {})


def test_rows_keep_the_newest_state_whatever_the_order() -> None:
    first = record(1, "waiting", [("greet", "send", "sent")])
    second = record(2, "handed_off", [("greet", "send", "pressed"), ("h", "handoff", "handed_off")])
    third = record(3, "ended", [("h", "handoff", "released")])
    row = run_row(first, None)
    row = run_row(second, row)
    row = run_row(third, row)
    late = run_row(third, run_row(first, run_row(second, None)))
    for r in (row, late):
        assert (r.decision, r.status, r.last_step) == (3, "ended", "h")
        assert r.started_at == T0 + timedelta(seconds=1)
        assert r.completed
        assert r.handed_off


def test_a_replaced_run_is_not_completed() -> None:
    replaced = record(2, "ended", [("greet", "run", "replaced")], input_kind="replaced")
    row = run_row(replaced, run_row(record(1, "waiting", [("greet", "send", "sent")]), None))
    assert not row.completed
    assert row.last_step == "greet"
