"""Prometheus business metrics, beside the runtime's technical ones on ``/metrics``.

Counters and histograms move as the projectors apply new events (on the instance that
leads the projection, so dashboards sum over instances); the leads gauge is read from
Postgres periodically, so every instance reports the same current picture.
"""

from __future__ import annotations

import asyncio

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import pause

log = get_logger(__name__)

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_RESPONSE = (10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400)

MESSAGES = Counter(
    "switchboard_analytics_messages_total",
    "Messages by channel and direction (in: customers, out: the business)",
    ["workspace", "channel", "direction"],
)
DELIVERIES = Counter(
    "switchboard_analytics_deliveries_total",
    "Delivery outcomes (queued, sent, retrying, failed, delivered, read, undelivered)",
    ["workspace", "provider", "outcome"],
)
FAILURES = Counter(
    "switchboard_analytics_delivery_failures_total",
    "Failed or undelivered messages by reason code",
    ["workspace", "provider", "reason"],
)
SEND_LATENCY = Histogram(
    "switchboard_analytics_send_latency_seconds",
    "Outbound accepting a send to the provider accepting it",
    ["channel"],
    buckets=_SECONDS,
)
E2E_LATENCY = Histogram(
    "switchboard_analytics_end_to_end_latency_seconds",
    "Webhook accepted by ingest to the normalized event stored in CONV",
    ["channel"],
    buckets=_SECONDS,
)
FIRST_RESPONSE = Histogram(
    "switchboard_analytics_first_response_seconds",
    "A conversation's first customer message to the first reply",
    ["channel"],
    buckets=_RESPONSE,
)
LEAD_ENTRIES = Counter(
    "switchboard_analytics_lead_stage_entries_total",
    "Leads entering a stage (creation counts as entering the first)",
    ["workspace", "stage", "source"],
)
LEADS = Gauge(
    "switchboard_analytics_leads",
    "Leads by current stage (read from the rollups)",
    ["workspace", "stage"],
)
CONVERSIONS = Counter(
    "switchboard_analytics_conversions_total",
    "Conversion commands published to outbound (Meta CAPI)",
    ["workspace", "event_name"],
)
MTPROTO_EVENTS = Counter(
    "switchboard_analytics_mtproto_events_total", "MTProto events by name", ["event"]
)


async def refresh_gauges(pool: asyncpg.Pool, stop: asyncio.Event, every: float) -> None:
    """Keep the leads-by-stage gauge current until ``stop``."""
    while not stop.is_set():
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT workspace_id, stage, count(*) AS n FROM leads GROUP BY 1, 2"
                )
            LEADS.clear()
            for r in rows:
                LEADS.labels(r["workspace_id"], r["stage"]).set(r["n"])
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("gauge refresh failed", error=str(exc))
        await pause(stop, every)
