"""Rollups of stream ``MTPROTO``: session health (state, connects, drops, flood waits, login
failures) and backfill jobs (pages, messages fetched, outcome).

Read by event name and field names rather than catalog classes: the MTProto catalog grows
with the gateway, and an event this service does not know yet is still counted by name in
``event_counts`` (and on ``/metrics``) instead of being dropped or dead-lettered. Messages
read by sessions are ``conv.*`` events (channel ``mtproto``) and count with the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from switchboard.analytics import metrics
from switchboard.analytics.context import Context
from switchboard.analytics.counting import count_events, fresh, rows_for
from switchboard.analytics.items import Item
from switchboard.runtime.db import Conn

PROJECTION = "analytics_mtproto"
STREAM = "MTPROTO"
SUBJECTS = ("mtproto.>",)

# What a session's last lifecycle event says about it.
STATES = {
    "login_code_sent": "logging_in",
    "login_password_needed": "logging_in",
    "login_succeeded": "authorized",
    "login_failed": "login_failed",
    "session_connected": "connected",
    "session_disconnected": "disconnected",
    "session_revoked": "revoked",
}


@dataclass
class Session:
    state: str
    last_event: str
    last_at: datetime
    connects: int = 0
    disconnects: int = 0
    flood_waits: int = 0
    flood_wait_seconds: int = 0
    login_failures: int = 0
    account_status: str | None = None  # mtproto.account_status_changed, the latest
    account_status_at: datetime | None = None


@dataclass
class Backfill:
    chat: str
    started_at: datetime
    last_at: datetime
    fetched: int = 0
    pages: int = 0
    status: str = "running"
    detail: str | None = None


def _value(item: Item, name: str) -> Any:
    if item.model is not None:
        value: Any = getattr(item.model, name, None)
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return getattr(value, "value", value)
    return item.body.get(name)


async def apply(conn: Conn, items: list[Item], ctx: Context) -> None:
    new = await fresh(conn, items)
    sessions, jobs = await _load(conn, new)
    for item in new:
        session = item.field("session_id", "session")
        if not session:
            continue
        short = item.name.split(".", 1)[-1]
        at, ws = item.time(), item.workspace
        s = sessions.get((ws, session))
        if s is None:
            s = sessions[(ws, session)] = Session("unknown", short, at)
        s.last_event, s.last_at = short, at
        s.state = STATES.get(short, s.state)
        if short == "session_connected":
            s.connects += 1
        elif short == "session_disconnected":
            s.disconnects += 1
        elif short == "login_failed":
            s.login_failures += 1
        elif short == "flood_wait":
            s.flood_waits += 1
            s.flood_wait_seconds += int(_value(item, "seconds") or 0)
        elif short == "account_status_changed":
            s.account_status, s.account_status_at = str(_value(item, "status") or "") or None, at
        elif short.startswith("backfill_"):
            _backfill(jobs, ws, session, short, at, item)
    await count_events(STREAM, new).write(conn)
    await _save(conn, sessions, jobs)
    if ctx.observe:
        for item in new:
            metrics.MTPROTO_EVENTS.labels(item.name).inc()


def _backfill(
    jobs: dict[tuple[str, str, str], Backfill],
    ws: str,
    session: str,
    short: str,
    at: datetime,
    item: Item,
) -> None:
    job_id = item.field("job_id") or "-"
    chat = _value(item, "chat")
    chat_id = str(chat.get("id", "")) if isinstance(chat, dict) else ""
    job = jobs.get((ws, session, job_id))
    if job is None:
        job = jobs[(ws, session, job_id)] = Backfill(chat_id, at, at)
    job.chat = job.chat or chat_id
    job.last_at = max(job.last_at, at)
    job.fetched = max(job.fetched, int(_value(item, "fetched") or 0))
    if short == "backfill_progress":
        job.pages += 1
    elif short == "backfill_completed":
        job.status, job.detail = "completed", str(_value(item, "stopped_by") or "") or None
    elif short == "backfill_failed":
        job.status, job.detail = "failed", str(_value(item, "reason") or "") or None


async def _load(
    conn: Conn, items: list[Item]
) -> tuple[dict[tuple[str, str], Session], dict[tuple[str, str, str], Backfill]]:
    keys = {(i.workspace, i.field("session_id", "session")) for i in items}
    keys = {k for k in keys if k[1]}
    sessions: dict[tuple[str, str], Session] = {}
    jobs: dict[tuple[str, str, str], Backfill] = {}
    if not keys:
        return sessions, jobs
    for r in await rows_for(conn, "mtproto_sessions", "session", keys):
        sessions[(r["workspace_id"], r["session"])] = Session(
            r["state"], r["last_event"], r["last_at"], r["connects"], r["disconnects"],
            r["flood_waits"], r["flood_wait_seconds"], r["login_failures"],
            r["account_status"], r["account_status_at"],
        )  # fmt: skip
    for r in await rows_for(conn, "mtproto_backfill", "session", keys):
        jobs[(r["workspace_id"], r["session"], r["job_id"])] = Backfill(
            r["chat"], r["started_at"], r["last_at"], r["fetched"], r["pages"], r["status"],
            r["detail"],
        )  # fmt: skip
    return sessions, jobs


async def _save(
    conn: Conn,
    sessions: dict[tuple[str, str], Session],
    jobs: dict[tuple[str, str, str], Backfill],
) -> None:
    if sessions:
        rows = [
            (k[0], k[1], s.state, s.last_event, s.last_at, s.connects, s.disconnects,
             s.flood_waits, s.flood_wait_seconds, s.login_failures, s.account_status,
             s.account_status_at)
            for k, s in sessions.items()
        ]  # fmt: skip
        await conn.execute(
            """INSERT INTO mtproto_sessions SELECT * FROM unnest(
                   $1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                   $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[],
                   $11::text[], $12::timestamptz[])
               ON CONFLICT (workspace_id, session) DO UPDATE SET
                   state = EXCLUDED.state, last_event = EXCLUDED.last_event,
                   last_at = EXCLUDED.last_at, connects = EXCLUDED.connects,
                   disconnects = EXCLUDED.disconnects, flood_waits = EXCLUDED.flood_waits,
                   flood_wait_seconds = EXCLUDED.flood_wait_seconds,
                   login_failures = EXCLUDED.login_failures,
                   account_status = EXCLUDED.account_status,
                   account_status_at = EXCLUDED.account_status_at""",
            *[list(c) for c in zip(*rows, strict=True)],
        )
    if jobs:
        rows2 = [
            (k[0], k[1], k[2], j.chat, j.fetched, j.pages, j.status, j.detail, j.started_at,
             j.last_at)
            for k, j in jobs.items()
        ]  # fmt: skip
        await conn.execute(
            """INSERT INTO mtproto_backfill SELECT * FROM unnest(
                   $1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                   $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[])
               ON CONFLICT (workspace_id, session, job_id) DO UPDATE SET
                   chat = EXCLUDED.chat, fetched = EXCLUDED.fetched, pages = EXCLUDED.pages,
                   status = EXCLUDED.status, detail = EXCLUDED.detail,
                   last_at = EXCLUDED.last_at""",
            *[list(c) for c in zip(*rows2, strict=True)],
        )
