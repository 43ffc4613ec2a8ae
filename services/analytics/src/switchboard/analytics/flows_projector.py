"""The per-flow funnel from stream ``FLOWS``: each run's latest state (started, completed,
handed off, where it stopped) and the steps it reached, from ``flows.run_recorded``; flow
names from ``flows.flow_saved``.

A run record carries the run's whole state, so the row keeps the record with the highest
decision number and the result does not depend on batch boundaries or replays. A run that a
command replaced (another flow started over it) is neither completed nor dropped at a step:
it was cut short, and counts as started only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from switchboard.analytics.context import Context
from switchboard.analytics.counting import count_events, fresh, rows_for
from switchboard.analytics.items import Item
from switchboard.runtime.db import Conn

PROJECTION = "analytics_flows"
STREAM = "FLOWS"
SUBJECTS = ("flows.run_recorded.>", "flows.flow_saved.>")
# Step records that are not steps of the flow (bookkeeping of the run itself).
NOT_STEPS = frozenset({"run", "engine"})


@dataclass
class RunRow:
    flow_id: str
    revision: int
    started_at: datetime
    updated_at: datetime
    decision: int
    status: str
    last_step: str | None
    completed: bool
    handed_off: bool


def _get(item: Item, name: str) -> Any:
    if item.model is not None:
        return getattr(item.model, name, None)
    return item.body.get(name)


def _steps(item: Item) -> list[tuple[str, str, str]]:
    """(step, type, outcome) of each step the record took."""
    out = []
    for s in _get(item, "steps") or ():
        d = s if isinstance(s, dict) else s.model_dump()
        out.append((str(d.get("step", "")), str(d.get("type", "")), str(d.get("outcome", ""))))
    return out


def run_row(item: Item, before: RunRow | None) -> RunRow:
    """The run's row after this record (pure: records may come in any order)."""
    status = str(getattr(_get(item, "status"), "value", _get(item, "status")))
    steps = [s for s in _steps(item) if s[1] not in NOT_STEPS]
    replaced = str(_get(item, "input_kind")) == "replaced"
    handed = any(t == "handoff" and o == "handed_off" for _, t, o in steps)
    at = item.envelope.time
    decision = int(_get(item, "decision") or 1)
    row = RunRow(
        flow_id=str(_get(item, "flow_id")),
        revision=int(_get(item, "revision") or 1),
        started_at=at,
        updated_at=at,
        decision=decision,
        status=status,
        last_step=steps[-1][0] if steps else (before.last_step if before else None),
        completed=status == "ended" and not replaced,
        handed_off=handed,
    )
    if before is None:
        return row
    started = min(before.started_at, at)
    handed_off = before.handed_off or handed
    if before.decision > decision:  # an older record arriving late: keep the newer state
        before.started_at, before.handed_off = started, handed_off
        return before
    row.started_at, row.handed_off = started, handed_off
    if not steps:
        row.last_step = before.last_step
    return row


async def apply(conn: Conn, items: list[Item], ctx: Context) -> None:
    new = await fresh(conn, items)
    runs: dict[tuple[str, str], RunRow] = {}
    reached: dict[tuple[str, str, str], datetime] = {}
    names: dict[tuple[str, str], tuple[int, str]] = {}
    keys = {(i.workspace, str(_get(i, "run_id"))) for i in new if i.name == "flows.run_recorded"}
    runs.update(await _load(conn, keys))
    for item in new:
        ws = item.workspace
        if item.name == "flows.flow_saved":
            doc = _get(item, "document") or {}
            revision = int(_get(item, "revision") or 1)
            key = (ws, str(_get(item, "flow_id")))
            if key not in names or names[key][0] < revision:
                names[key] = (revision, str(doc.get("name") or ""))
            continue
        if item.name != "flows.run_recorded":
            continue
        run_id = str(_get(item, "run_id"))
        runs[(ws, run_id)] = run_row(item, runs.get((ws, run_id)))
        for step, type_, _ in _steps(item):
            if type_ in NOT_STEPS:
                continue
            at = item.envelope.time
            k = (ws, run_id, step)
            reached[k] = min(reached.get(k, at), at)
    await count_events(STREAM, new).write(conn)
    await _save(conn, runs, reached, names)


async def _load(conn: Conn, keys: set[tuple[str, str]]) -> dict[tuple[str, str], RunRow]:
    if not keys:
        return {}
    rows = await rows_for(conn, "flow_runs", "run_id", keys)
    return {
        (r["workspace_id"], r["run_id"]): RunRow(
            r["flow_id"],
            r["revision"],
            r["started_at"],
            r["updated_at"],
            r["decision"],
            r["status"],
            r["last_step"],
            r["completed"],
            r["handed_off"],
        )
        for r in rows
    }


async def _save(
    conn: Conn,
    runs: dict[tuple[str, str], RunRow],
    reached: dict[tuple[str, str, str], datetime],
    names: dict[tuple[str, str], tuple[int, str]],
) -> None:
    if runs:
        rows = [
            (k[0], k[1], r.flow_id, r.revision, r.started_at, r.updated_at, r.decision,
             r.status, r.last_step, r.completed, r.handed_off)
            for k, r in runs.items()
        ]  # fmt: skip
        await conn.execute(
            """INSERT INTO flow_runs SELECT * FROM unnest(
                   $1::text[], $2::text[], $3::text[], $4::int[], $5::timestamptz[],
                   $6::timestamptz[], $7::int[], $8::text[], $9::text[], $10::bool[],
                   $11::bool[])
               ON CONFLICT (workspace_id, run_id) DO UPDATE SET
                   started_at = EXCLUDED.started_at, updated_at = EXCLUDED.updated_at,
                   decision = EXCLUDED.decision, status = EXCLUDED.status,
                   last_step = EXCLUDED.last_step, completed = EXCLUDED.completed,
                   handed_off = EXCLUDED.handed_off""",
            *[list(c) for c in zip(*rows, strict=True)],
        )
    if reached:
        await conn.execute(
            """INSERT INTO flow_run_steps SELECT * FROM unnest(
                   $1::text[], $2::text[], $3::text[], $4::timestamptz[])
               ON CONFLICT (workspace_id, run_id, step) DO UPDATE SET
                   first_at = LEAST(flow_run_steps.first_at, EXCLUDED.first_at)""",
            [k[0] for k in reached],
            [k[1] for k in reached],
            [k[2] for k in reached],
            list(reached.values()),
        )
    if names:
        await conn.execute(
            """INSERT INTO flow_names SELECT * FROM unnest(
                   $1::text[], $2::text[], $3::int[], $4::text[])
               ON CONFLICT (workspace_id, flow_id) DO UPDATE SET
                   revision = EXCLUDED.revision, name = EXCLUDED.name
               WHERE flow_names.revision < EXCLUDED.revision""",
            [k[0] for k in names],
            [k[1] for k in names],
            [v[0] for v in names.values()],
            [v[1] for v in names.values()],
        )
