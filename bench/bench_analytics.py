"""`just bench analytics`: how fast the analytics rollups replay, against the bus alone.

Loads realistic traffic (bench/traffic.py) into CONV, DELIVERY and CRM, then measures how
fast the production reader (the projection's puller, ack-less, the rebuild's batch size)
reads every event with all four analytics projections' readers running at once and an
apply that does nothing (the baseline: the cost of the bus alone, measured before and after
the replay), and how fast ``switchboard analytics rebuild`` replays them into fresh rollups
and swaps those in, end to end. `BENCH_EVENTS` sets the size.
Prints, last: `analytics_replay_ratio=<x> events_per_s=<y>`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import tempfile
import time
from datetime import datetime
from pathlib import Path

from fair_baseline import bus_only_rate, readers_of
from switchboard.analytics.app import PROJECTORS
from switchboard.analytics.rebuild import rebuild
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.events import Message, encode
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from traffic import realistic

EVENTS = int(os.environ.get("BENCH_EVENTS", "60000"))


async def load(bus: Bus, events: list[tuple[Message, datetime]]) -> None:
    pending = []
    for ev, at in events:
        enc = encode(ev, source="bench", workspace_id="bench", time=at)
        pending.append(bus.js.publish(enc.subject, enc.body, headers=enc.headers))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


def settings_for(nats_url: str, pg_url: str) -> AnalyticsSettings:
    return AnalyticsSettings(
        nats_url=nats_url,
        database_url=pg_url,
        api_keys={"bench-key-1": "bench"},
        conversion_pixel="1234567890",
    )


def rebuild_batch(settings: AnalyticsSettings) -> int:
    """The batch the rebuild's projections read with (analytics/rebuild.py)."""
    return max(settings.projection_batch, 1000)


async def replay(nats_url: str, pg_url: str, total: int) -> float:
    settings = settings_for(nats_url, pg_url)
    gc.collect()
    gc.freeze()  # as a CLI process would start: nothing but the imports
    try:
        start = time.perf_counter()
        await rebuild(settings, log=lambda line: print(f"  rebuild: {line}"))
        return total / (time.perf_counter() - start)
    finally:
        gc.unfreeze()  # the baseline after the replay runs as the one before it


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    nats = EmbeddedNats(tmp / "nats").start()
    pg = EmbeddedPostgres(tmp / "pg").start()
    try:
        bus = await Bus.connect(nats.url, name="bench")
        await bus.provision()
        events = realistic(EVENTS, random.Random(42))
        t = time.perf_counter()
        await load(bus, events)
        total = len(events)
        print(f"loaded {total:,} events (CONV, DELIVERY, CRM) in {time.perf_counter() - t:.1f} s")
        del events
        readers = readers_of(PROJECTORS)
        batch = rebuild_batch(settings_for(nats.url, pg.url))
        # Before and after the replay, counted as their mean: the machine is shared.
        read, before = await bus_only_rate(bus, readers, batch)
        rate = await replay(nats.url, pg.url, total)
        _, after = await bus_only_rate(bus, readers, batch)
        await bus.close()
        base = (before + after) / 2
        print(
            f"baseline: production puller, no-op apply, {len(readers)} readers at once, "
            f"batch {batch}: {base:,.0f} events/s over {read:,} events "
            f"(before {before:,.0f}, after {after:,.0f})"
        )
        print(f"replay: analytics rebuild from empty: {rate:,.0f} events/s")
        print(f"analytics_replay_ratio={rate / base:.2f} events_per_s={rate:.0f}")
    finally:
        pg.stop()
        nats.stop()


if __name__ == "__main__":
    asyncio.run(main())
