"""Publishing decided conversions (the outbox side of the conversion ledger).

The CRM projection writes a ledger row in the same transaction as its checkpoint; this
loop publishes rows not yet published and marks them. Rows are taken with
``FOR UPDATE SKIP LOCKED`` so instances never publish the same row at once; if a process
dies between the publish and the mark, the retry carries the same ``Nats-Msg-Id``
(``conversion:<conversion_id>``), which JetStream drops as a duplicate, and outbound sends a
``conversion_id`` at most once besides.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

from switchboard.analytics import metrics
from switchboard.analytics.context import LEDGER_SCHEMA
from switchboard.analytics.crm_projector import CONVERSIONS_CHANNEL
from switchboard.events.catalog.outbound import SendConversion
from switchboard.runtime.bus import Bus
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)


async def publish_pending(pool: asyncpg.Pool, bus: Bus, limit: int = 100) -> int:
    """Publish up to ``limit`` unpublished conversions; returns how many went out."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT conversion_id, workspace_id, crm_event_id, command::text AS command
                FROM {LEDGER_SCHEMA}.conversion_ledger WHERE published_at IS NULL
                ORDER BY event_time, conversion_id LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit,
        )
        for row in rows:
            cmd = SendConversion.model_validate_json(row["command"])
            await bus.publish(
                cmd, workspace_id=row["workspace_id"], causation_id=row["crm_event_id"]
            )
            await conn.execute(
                f"""UPDATE {LEDGER_SCHEMA}.conversion_ledger SET published_at = now()
                    WHERE conversion_id = $1""",
                row["conversion_id"],
            )
            metrics.CONVERSIONS.labels(row["workspace_id"], cmd.event_name).inc()
            log.info(
                "conversion published",
                conversion_id=cmd.conversion_id,
                event_name=cmd.event_name,
                pixel=cmd.account,
            )
    return len(rows)


async def run_publisher(
    pool: asyncpg.Pool, bus: Bus, stop: asyncio.Event, poll_s: float = 2.0
) -> None:
    """Publish as soon as a CRM batch that decided conversions commits (Postgres NOTIFY is
    delivered on commit), and every ``poll_s`` in case a notification was missed."""
    wake = asyncio.Event()

    def on_notify(*_: Any) -> None:
        wake.set()

    async with pool.acquire() as listener:
        await listener.add_listener(CONVERSIONS_CHANNEL, on_notify)
        try:
            while not stop.is_set():
                wake.clear()
                while await publish_pending(pool, bus):
                    pass
                waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener(CONVERSIONS_CHANNEL, on_notify)
