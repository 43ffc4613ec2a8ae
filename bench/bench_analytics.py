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
from pathlib import Path

from fair_baseline import replay_against_baseline
from switchboard.analytics.app import PROJECTORS
from switchboard.analytics.rebuild import rebuild
from switchboard.analytics.settings import AnalyticsSettings
from traffic import load, realistic

EVENTS = int(os.environ.get("BENCH_EVENTS", "60000"))


def settings_for(nats_url: str, pg_url: str) -> AnalyticsSettings:
    return AnalyticsSettings(
        nats_url=nats_url,
        database_url=pg_url,
        api_keys={"bench-key-1": "bench"},
        conversion_pixel="1234567890",
        conversion_max_age_s=0,  # the traffic is dated 2026-11-01: its conversions decided
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
    run = await replay_against_baseline(
        Path(tempfile.mkdtemp(prefix="bench-analytics-")),
        realistic(EVENTS, random.Random(42)),
        PROJECTORS,
        lambda nats_url, pg_url: rebuild_batch(settings_for(nats_url, pg_url)),
        replay,
        load,
    )
    print(f"replay: analytics rebuild from empty: {run.rate:,.0f} events/s")
    print(f"analytics_replay_ratio={run.rate / run.base:.2f} events_per_s={run.rate:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
