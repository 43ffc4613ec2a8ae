"""Reads over the rollups for the API and the dashboard; every read is for one workspace.

Percentiles are exact: ``percentile_disc`` over the stored samples of the range (one row
per message for latencies, one per conversation for first response). Samples merge across
any buckets and filters a query asks for, where precomputed per-bucket percentiles cannot
be combined, and they are keyed by the event they came from, so a rebuild stores the same
rows and answers the same numbers. A mergeable sketch (DDSketch, t-digest) would bound the
storage at the price of approximate answers; at one small row per message the samples cost
about what the messages themselves cost in the CRM, so exactness wins here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from switchboard.analytics.params import Filters, Window, iso
from switchboard.runtime.db import Conn

OUTCOMES = ("queued", "sent", "retrying", "failed", "delivered", "read", "undelivered")
FAILURES = ("failed", "undelivered", "retrying")
QUANTILES = "ARRAY[0.5, 0.95, 0.99]::float8[]"


class Where:
    """A WHERE clause built from the filters, values always as ``$n`` parameters."""

    def __init__(
        self, ws: str, window: Window, time_col: str = "hour", ws_col: str = "workspace_id"
    ) -> None:
        self.parts = [f"{ws_col} = $1", f"{time_col} >= $2", f"{time_col} < $3"]
        self.args: list[Any] = [ws, window.start, window.end]

    def eq(self, column: str, value: str | None) -> Where:
        if value is not None:
            self.args.append(value)
            self.parts.append(f"{column} = ${len(self.args)}")
        return self

    def raw(self, condition: str) -> Where:
        self.parts.append(condition)
        return self

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts)


def _outcomes_where(ws: str, window: Window, f: Filters) -> Where:
    """The ``delivery_outcomes`` rows a delivery report counts: the workspace's in the
    window, for the provider, account and campaign asked for."""
    where = Where(ws, window).eq("provider", f.provider).eq("account", f.account)
    return where.eq("campaign_id", f.campaign)


def bucket_sql(window: Window, column: str = "hour") -> str:
    if window.bucket == "day":
        return f"date_trunc('day', {column}, 'UTC')"
    return f"date_trunc('hour', {column})"


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _series(
    window: Window, found: dict[datetime, dict[str, Any]], empty: dict[str, Any]
) -> list[dict[str, Any]]:
    return [{"bucket": iso(b), **found.get(b, empty)} for b in window.buckets()]


async def messages(conn: Conn, ws: str, window: Window, f: Filters) -> dict[str, Any]:
    where = Where(ws, window).eq("channel", f.channel).eq("account", f.account)
    rows = await conn.fetch(
        f"""SELECT {bucket_sql(window)} AS bucket, direction, sum(messages)::bigint AS n
            FROM message_volume WHERE {where.sql} GROUP BY 1, 2""",
        *where.args,
    )
    series: dict[datetime, dict[str, Any]] = {}
    for r in rows:
        point = series.setdefault(r["bucket"], {"inbound": 0, "outbound": 0})
        point["inbound" if r["direction"] == "in" else "outbound"] += r["n"]
    by = await conn.fetch(
        f"""SELECT channel, account,
                   sum(messages) FILTER (WHERE direction = 'in')::bigint AS inbound,
                   sum(messages) FILTER (WHERE direction = 'out')::bigint AS outbound
            FROM message_volume WHERE {where.sql} GROUP BY 1, 2 ORDER BY 1, 2""",
        *where.args,
    )
    by_channel = [
        {
            "channel": r["channel"],
            "account": r["account"],
            "inbound": r["inbound"] or 0,
            "outbound": r["outbound"] or 0,
        }
        for r in by
    ]
    return {
        "window": window.to_json(),
        "filters": f.given(),
        "totals": {
            "inbound": sum(r["inbound"] for r in by_channel),
            "outbound": sum(r["outbound"] for r in by_channel),
        },
        "series": _series(window, series, {"inbound": 0, "outbound": 0}),
        "by_channel": by_channel,
    }


def _outcomes_row(counts: dict[str, int]) -> dict[str, Any]:
    row: dict[str, Any] = {o: counts.get(o, 0) for o in OUTCOMES}
    row["delivery_rate"] = _rate(row["delivered"], row["sent"])
    row["failure_rate"] = _rate(row["failed"], row["sent"] + row["failed"])
    return row


async def deliveries(conn: Conn, ws: str, window: Window, f: Filters) -> dict[str, Any]:
    where = _outcomes_where(ws, window, f)
    rows = await conn.fetch(
        f"""SELECT {bucket_sql(window)} AS bucket, outcome, sum(events)::bigint AS n
            FROM delivery_outcomes WHERE {where.sql} GROUP BY 1, 2""",
        *where.args,
    )
    series: dict[datetime, dict[str, Any]] = {}
    for r in rows:
        series.setdefault(r["bucket"], dict.fromkeys(OUTCOMES, 0))[r["outcome"]] = r["n"]
    per = await conn.fetch(
        f"""SELECT provider, account, outcome, sum(events)::bigint AS n
            FROM delivery_outcomes WHERE {where.sql} GROUP BY 1, 2, 3 ORDER BY 1, 2""",
        *where.args,
    )
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    totals: dict[str, int] = {}
    for r in per:
        grouped.setdefault((r["provider"], r["account"]), {})[r["outcome"]] = r["n"]
        totals[r["outcome"]] = totals.get(r["outcome"], 0) + r["n"]
    reasons = await conn.fetch(
        f"""SELECT provider, outcome, reason, min(example) AS example, sum(events)::bigint AS n
            FROM delivery_outcomes
            WHERE {where.sql} AND outcome = ANY('{{failed,undelivered,retrying}}')
            GROUP BY 1, 2, 3 ORDER BY n DESC, 1, 2, 3""",
        *where.args,
    )
    return {
        "window": window.to_json(),
        "filters": f.given(),
        "totals": _outcomes_row(totals),
        "series": _series(window, series, dict.fromkeys(OUTCOMES, 0)),
        "by_provider": [
            {"provider": p, "account": a, **_outcomes_row(c)} for (p, a), c in grouped.items()
        ],
        "failure_reasons": [
            {
                "provider": r["provider"],
                "outcome": r["outcome"],
                "reason": r["reason"],
                "example": r["example"],
                "count": r["n"],
            }
            for r in reasons
        ],
    }


def _percentiles(r: Any) -> dict[str, Any]:
    p = r["p"] or [None, None, None]
    return {
        "count": r["n"],
        "p50_ms": _ms(p[0]),
        "p95_ms": _ms(p[1]),
        "p99_ms": _ms(p[2]),
        "mean_ms": _ms(r["mean"]),
    }


async def latency(conn: Conn, ws: str, window: Window, f: Filters) -> dict[str, Any]:
    where = Where(ws, window).eq("channel", f.channel).eq("account", f.account)
    stats = f"""count(*) AS n, avg(ms) AS mean,
                percentile_disc({QUANTILES}) WITHIN GROUP (ORDER BY ms) AS p"""
    overall = await conn.fetch(
        f"SELECT kind, {stats} FROM latency_samples WHERE {where.sql} GROUP BY 1", *where.args
    )
    per = await conn.fetch(
        f"""SELECT kind, channel, {stats} FROM latency_samples WHERE {where.sql}
            GROUP BY 1, 2 ORDER BY 1, 2""",
        *where.args,
    )
    buckets = await conn.fetch(
        f"""SELECT kind, {bucket_sql(window)} AS bucket, {stats} FROM latency_samples
            WHERE {where.sql} GROUP BY 1, 2""",
        *where.args,
    )
    empty = {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    out: dict[str, Any] = {"window": window.to_json(), "filters": f.given()}
    for kind, name in (("send", "send"), ("e2e", "end_to_end")):
        series = {r["bucket"]: _percentiles(r) for r in buckets if r["kind"] == kind}
        total = next((_percentiles(r) for r in overall if r["kind"] == kind), empty)
        out[name] = {
            "overall": total,
            "by_channel": [
                {"channel": r["channel"], **_percentiles(r)} for r in per if r["kind"] == kind
            ],
            "series": _series(window, series, empty),
        }
    return out


RESPONSE_MS = "extract(epoch FROM first_reply_at - first_in_at) * 1000"


async def first_response(conn: Conn, ws: str, window: Window, f: Filters) -> dict[str, Any]:
    where = Where(ws, window, "first_in_at").eq("channel", f.channel).eq("account", f.account)
    stats = f"""count(*) AS conversations, count(first_reply_at) AS n,
                avg({RESPONSE_MS}) AS mean,
                percentile_disc({QUANTILES}) WITHIN GROUP (ORDER BY {RESPONSE_MS})
                    FILTER (WHERE first_reply_at IS NOT NULL) AS p"""

    def row(r: Any) -> dict[str, Any]:
        stats = _percentiles(r)
        stats["answered"] = stats.pop("count")
        return {
            "conversations": r["conversations"],
            "awaiting_reply": r["conversations"] - r["n"],
            **stats,
        }

    overall = await conn.fetchrow(
        f"SELECT {stats} FROM conversations WHERE {where.sql}", *where.args
    )
    per = await conn.fetch(
        f"""SELECT channel, {stats} FROM conversations WHERE {where.sql}
            GROUP BY 1 ORDER BY 1""",
        *where.args,
    )
    buckets = await conn.fetch(
        f"""SELECT {bucket_sql(window, "first_in_at")} AS bucket, {stats} FROM conversations
            WHERE {where.sql} GROUP BY 1""",
        *where.args,
    )
    empty = row({"conversations": 0, "n": 0, "mean": None, "p": None})
    return {
        "window": window.to_json(),
        "filters": f.given(),
        "overall": row(overall),
        "by_channel": [{"channel": r["channel"], **row(r)} for r in per],
        "series": _series(window, {r["bucket"]: row(r) for r in buckets}, empty),
    }


async def first_response_conversations(
    conn: Conn, ws: str, window: Window, f: Filters, limit: int
) -> dict[str, Any]:
    where = Where(ws, window, "first_in_at").eq("channel", f.channel).eq("account", f.account)
    rows = await conn.fetch(
        f"""SELECT conversation, channel, account, first_in_at, first_reply_at, inbound,
                   outbound, {RESPONSE_MS} AS ms
            FROM conversations WHERE {where.sql}
            ORDER BY first_in_at DESC, conversation LIMIT {int(limit)}""",
        *where.args,
    )
    return {
        "window": window.to_json(),
        "filters": f.given(),
        "items": [
            {
                "conversation": r["conversation"],
                "channel": r["channel"],
                "account": r["account"],
                "first_in_at": iso(r["first_in_at"]),
                "first_reply_at": iso(r["first_reply_at"]) if r["first_reply_at"] else None,
                "response_ms": _ms(r["ms"]),
                "inbound": r["inbound"],
                "outbound": r["outbound"],
            }
            for r in rows
        ],
    }


def _stage_order(stages: Sequence[str], found: Sequence[str]) -> list[str]:
    return list(stages) + sorted(set(found) - set(stages))


async def funnel(
    conn: Conn, ws: str, window: Window, f: Filters, stages: Sequence[str]
) -> dict[str, Any]:
    """Cohorts by creation time: of the leads created in the window (or bucket), how many
    reached each stage so far, and the rate; plus stage entries over time by entry time."""
    where = (
        Where(ws, window, "l.created_at", "l.workspace_id")
        .eq("l.source", f.source)
        .eq("l.campaign_id", f.campaign)
    )
    created = await conn.fetch(
        f"""SELECT {bucket_sql(window, "l.created_at")} AS bucket, l.source, count(*) AS n
            FROM leads l WHERE {where.sql} GROUP BY 1, 2""",
        *where.args,
    )
    reached = await conn.fetch(
        f"""SELECT {bucket_sql(window, "l.created_at")} AS bucket, l.source, s.stage,
                   count(*) AS n
            FROM leads l JOIN lead_stages_reached s
              ON s.workspace_id = l.workspace_id AND s.lead_id = l.lead_id
            WHERE {where.sql} GROUP BY 1, 2, 3""",
        *where.args,
    )
    current = await conn.fetch(
        f"SELECT l.stage, count(*) AS n FROM leads l WHERE {where.sql} GROUP BY 1", *where.args
    )
    ewhere = Where(ws, window).eq("source", f.source).eq("campaign_id", f.campaign)
    entries = await conn.fetch(
        f"""SELECT {bucket_sql(window)} AS bucket, stage, sum(entries)::bigint AS n
            FROM lead_stage_entries WHERE {ewhere.sql} GROUP BY 1, 2""",
        *ewhere.args,
    )
    order = _stage_order(stages, [r["stage"] for r in reached] + [r["stage"] for r in entries])
    total = sum(r["n"] for r in created)

    def stage_rows(counts: dict[str, int], of: int) -> list[dict[str, Any]]:
        return [
            {"stage": s, "reached": counts.get(s, 0), "rate": _rate(counts.get(s, 0), of)}
            for s in order
        ]

    def tally(rows: Sequence[Any], key: Any) -> dict[Any, dict[str, int]]:
        out: dict[Any, dict[str, int]] = {}
        for r in rows:
            bucket = out.setdefault(key(r), {})
            bucket[r["stage"]] = bucket.get(r["stage"], 0) + r["n"]
        return out

    def count(rows: Sequence[Any], key: Any) -> dict[Any, int]:
        out: dict[Any, int] = {}
        for r in rows:
            out[key(r)] = out.get(key(r), 0) + r["n"]
        return out

    by_bucket = tally(reached, lambda r: r["bucket"])
    created_by_bucket = count(created, lambda r: r["bucket"])
    by_source = tally(reached, lambda r: r["source"])
    created_by_source = count(created, lambda r: r["source"])
    overall = tally(reached, lambda r: "all").get("all", {})
    entry_counts = tally(entries, lambda r: r["bucket"])
    return {
        "window": window.to_json(),
        "filters": f.given(),
        "created": total,
        "stages": stage_rows(overall, total),
        "current": [
            {"stage": s, "leads": n}
            for s in order
            if (n := next((r["n"] for r in current if r["stage"] == s), 0))
        ],
        "by_source": [
            {"source": src, "created": n, "stages": stage_rows(by_source.get(src, {}), n)}
            for src, n in sorted(created_by_source.items())
        ],
        "series": [
            {
                "bucket": iso(b),
                "created": created_by_bucket.get(b, 0),
                "stages": stage_rows(by_bucket.get(b, {}), created_by_bucket.get(b, 0)),
            }
            for b in window.buckets()
        ],
        "entries": [
            {"bucket": iso(b), **{s: entry_counts.get(b, {}).get(s, 0) for s in order}}
            for b in window.buckets()
        ],
    }


async def campaigns(conn: Conn, ws: str, window: Window, f: Filters) -> dict[str, Any]:
    where = _outcomes_where(ws, window, f).raw("campaign_id <> ''")
    rows = await conn.fetch(
        f"""SELECT campaign_id, outcome, sum(events)::bigint AS n FROM delivery_outcomes
            WHERE {where.sql} GROUP BY 1, 2""",
        *where.args,
    )
    lwhere = Where(ws, window, "created_at").eq("campaign_id", f.campaign).raw("campaign_id <> ''")
    leads = await conn.fetch(
        f"""SELECT campaign_id, count(*) AS n FROM leads WHERE {lwhere.sql} GROUP BY 1""",
        *lwhere.args,
    )
    converted = await conn.fetch(
        f"""SELECT l.campaign_id, count(*) AS n FROM conversion_ledger c
            JOIN leads l ON l.workspace_id = c.workspace_id AND l.lead_id = c.lead_id
            WHERE c.workspace_id = $1 AND c.event_time >= $2 AND c.event_time < $3
              AND l.campaign_id <> '' {"AND l.campaign_id = $4" if f.campaign else ""}
            GROUP BY 1""",
        *lwhere.args,
    )
    grouped: dict[str, dict[str, int]] = {}
    for r in rows:
        grouped.setdefault(r["campaign_id"], {})[r["outcome"]] = r["n"]
    lead_counts = {r["campaign_id"]: r["n"] for r in leads}
    conversions = {r["campaign_id"]: r["n"] for r in converted}
    ids = sorted(set(grouped) | set(lead_counts))
    items = []
    for cid in ids:
        row = _outcomes_row(grouped.get(cid, {}))
        row["read_rate"] = _rate(row["read"], row["sent"])
        items.append(
            {
                "campaign_id": cid,
                **row,
                "leads": lead_counts.get(cid, 0),
                "conversions": conversions.get(cid, 0),
            }
        )
    return {"window": window.to_json(), "filters": f.given(), "items": items}


async def mtproto(conn: Conn, ws: str, window: Window, f: Filters) -> dict[str, Any]:
    where = Where(ws, window).eq("account", f.account).raw("stream = 'MTPROTO'")
    events = await conn.fetch(
        f"""SELECT name, sum(events)::bigint AS n FROM event_counts WHERE {where.sql}
            GROUP BY 1 ORDER BY 1""",
        *where.args,
    )
    args: list[Any] = [ws] + ([f.account] if f.account else [])
    only = "AND session = $2" if f.account else ""
    sessions = await conn.fetch(
        f"SELECT * FROM mtproto_sessions WHERE workspace_id = $1 {only} ORDER BY session", *args
    )
    jobs = await conn.fetch(
        f"""SELECT * FROM mtproto_backfill WHERE workspace_id = $1 {only}
            ORDER BY started_at DESC, session, job_id LIMIT 200""",
        *args,
    )
    return {
        "window": window.to_json(),
        "filters": f.given(),
        "events": [{"name": r["name"], "count": r["n"]} for r in events],
        "sessions": [
            {
                "session": r["session"],
                "state": r["state"],
                "last_event": r["last_event"],
                "last_at": iso(r["last_at"]),
                "connects": r["connects"],
                "disconnects": r["disconnects"],
                "flood_waits": r["flood_waits"],
                "flood_wait_seconds": r["flood_wait_seconds"],
                "login_failures": r["login_failures"],
                "account_status": r["account_status"],
                # None until the gateway announced a status for the session
                "account_status_at": (
                    iso(r["account_status_at"]) if r["account_status_at"] else None
                ),
            }
            for r in sessions
        ],
        "backfill": [
            {
                "session": r["session"],
                "job_id": r["job_id"],
                "chat": r["chat"],
                "status": r["status"],
                "detail": r["detail"],
                "fetched": r["fetched"],
                "pages": r["pages"],
                "started_at": iso(r["started_at"]),
                "last_at": iso(r["last_at"]),
            }
            for r in jobs
        ],
    }


async def conversions(conn: Conn, ws: str, window: Window, limit: int) -> dict[str, Any]:
    rows = await conn.fetch(
        f"""SELECT conversion_id, lead_id, stage, event_name, value, currency, event_time,
                   command->>'account' AS pixel, published_at IS NOT NULL AS published
            FROM conversion_ledger
            WHERE workspace_id = $1 AND event_time >= $2 AND event_time < $3
            ORDER BY event_time DESC, conversion_id LIMIT {int(limit)}""",
        ws,
        window.start,
        window.end,
    )
    return {
        "window": window.to_json(),
        "items": [
            {
                "conversion_id": r["conversion_id"],
                "lead_id": r["lead_id"],
                "stage": r["stage"],
                "event_name": r["event_name"],
                "pixel": r["pixel"],
                "value": str(r["value"]) if r["value"] is not None else None,
                "currency": r["currency"],
                "event_time": iso(r["event_time"]),
                "published": r["published"],
            }
            for r in rows
        ],
    }


async def flow_funnel(conn: Conn, ws: str, window: Window, flow: str | None) -> dict[str, Any]:
    """Per flow, the runs started in the window: how many, completed, handed off, and per
    step how many reached it and how many stopped there without completing (drop-off).
    Steps come in funnel order: most reached first, then the earliest reached."""
    where = Where(ws, window, time_col="r.started_at", ws_col="r.workspace_id")
    if flow is not None:
        where.eq("r.flow_id", flow)
    totals = await conn.fetch(
        f"""SELECT r.flow_id, n.name, count(*)::bigint AS started,
                   count(*) FILTER (WHERE r.completed)::bigint AS completed,
                   count(*) FILTER (WHERE r.handed_off)::bigint AS handed_off
            FROM flow_runs r LEFT JOIN flow_names n
                ON n.workspace_id = r.workspace_id AND n.flow_id = r.flow_id
            WHERE {where.sql} GROUP BY 1, 2 ORDER BY 1""",
        *where.args,
    )
    steps = await conn.fetch(
        f"""SELECT r.flow_id, s.step, count(*)::bigint AS reached,
                   count(*) FILTER (WHERE NOT r.completed AND r.last_step = s.step)::bigint
                       AS dropped,
                   min(s.first_at) AS first_at
            FROM flow_runs r JOIN flow_run_steps s
                ON s.workspace_id = r.workspace_id AND s.run_id = r.run_id
            WHERE {where.sql} GROUP BY 1, 2 ORDER BY 1, 3 DESC, 5, 2""",
        *where.args,
    )
    by_flow: dict[str, list[dict[str, Any]]] = {}
    started_of = {r["flow_id"]: r["started"] for r in totals}
    for r in steps:
        started = started_of.get(r["flow_id"], 0)
        by_flow.setdefault(r["flow_id"], []).append(
            {
                "step": r["step"],
                "reached": r["reached"],
                "reach_rate": _rate(r["reached"], started),
                "dropped": r["dropped"],
                "drop_rate": _rate(r["dropped"], r["reached"]),
            }
        )
    return {
        "window": window.to_json(),
        "filters": {"flow": flow} if flow else {},
        "flows": [
            {
                "flow_id": r["flow_id"],
                "name": r["name"],
                "runs_started": r["started"],
                "completed": r["completed"],
                "completion_rate": _rate(r["completed"], r["started"]),
                "handed_off": r["handed_off"],
                "handoff_rate": _rate(r["handed_off"], r["started"]),
                "steps": by_flow.get(r["flow_id"], []),
            }
            for r in totals
        ],
    }
