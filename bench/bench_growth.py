"""`just bench growth`: how replay cost grows with the size of the history.

For each size of `BENCH_GROWTH_SIZES` (events, default 100k and 1M), on a fresh NATS and
Postgres: loads realistic traffic (bench/traffic.py) into CONV, DELIVERY and CRM, then runs
`switchboard-crm rebuild` and `switchboard-analytics rebuild` as the operator would, each
its own process, and prints their events/s, their peak RSS (the child's own maxrss, from
wait4) and the size of the projection tables they left per million events. The time is end
to end as an operator sees it (process start, migrations, replay, indexes, swap): the fixed
part favours the larger size, so sizes below 100k say little about growth.
Prints, last: `replay_growth_ratio=<x> analytics_growth_ratio=<a> crm_rss_growth=<y>
analytics_rss_growth=<z>`: CRM
replay events/s at the largest size over the smallest (goal >= 0.85), and each peak RSS at
the largest size over the smallest (sublinear when below the size ratio).

Then runs bench_outbound.py (backlog only, `BENCH_GROWTH_OUTBOUND_MESSAGES`, default 6000)
with 1, 2 and 3 outbound instances and prints each run's CPU milliseconds per message of
every process, so a reader can predict the cores a load needs; and the ingest at 1, 2 and
3 instances the same way (ingest_scaling.py: webhooks/s, the normalizers' catch-up, CPU per
webhook of every process).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench_crm import load
from ingest_scaling import ingest_scaling
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats, EmbeddedPostgres
from traffic import realistic

OUTBOUND_MESSAGES = os.environ.get("BENCH_GROWTH_OUTBOUND_MESSAGES", "6000")
SIZES = [int(s) for s in os.environ.get("BENCH_GROWTH_SIZES", "100000,1000000").split(",")]
CHUNK = 100_000  # events generated and published at a time, so the loader's memory is flat


@dataclass
class Replay:
    service: str
    events: int
    seconds: float
    peak_rss_mb: float
    table_mb: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def line(self) -> str:
        per_million = self.table_mb * 1_000_000 / self.events
        return (
            f"{self.service:<9} {self.events:>9,} events: {self.rate:8,.0f} events/s  "
            f"peak RSS {self.peak_rss_mb:6.0f} MB  tables {self.table_mb:7.1f} MB "
            f"({per_million:,.0f} MB per million events)"
        )


async def fill(nats_url: str, events: int) -> None:
    """Publish ``events`` realistic events in chunks (a different seed per chunk)."""
    bus = await Bus.connect(nats_url, name="bench-growth")
    await bus.provision()
    done = 0
    while done < events:
        n = min(CHUNK, events - done)
        # each chunk its own people, so contacts and leads keep growing with the history
        await load(bus, realistic(n, random.Random(done), people=max(n // 20, 100)))
        done += n
    await bus.close()


async def table_mb(pg_url: str, schema: str) -> float:
    conn = await asyncpg.connect(pg_url)
    try:
        size = await conn.fetchval(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind = 'r'",
            schema,
        )
    finally:
        await conn.close()
    return float(size) / 1024 / 1024


def rebuild(service: str, nats_url: str, pg_url: str, log: Path) -> tuple[float, float]:
    """Run `switchboard-<service> rebuild` as its own process: seconds and peak RSS in MB."""
    env = {
        **os.environ,
        "SWITCHBOARD_NATS_URL": nats_url,
        "SWITCHBOARD_DATABASE_URL": pg_url,
        "SWITCHBOARD_API_KEYS": "bench-key-1=bench",
        "SWITCHBOARD_ANALYTICS_CONVERSION_PIXEL": "1234567890",
        # the traffic is dated 2026-11-01: decide its conversions as when it was measured
        "SWITCHBOARD_ANALYTICS_CONVERSION_MAX_AGE_S": "0",
        "SWITCHBOARD_LOG_LEVEL": "warning",
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", f"switchboard.{service}.cli", "rebuild"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{service} rebuild failed ({proc.returncode}): see {log}")
    return seconds, usage.ru_maxrss / 1024  # Linux: kilobytes


async def measure(tmp: Path, events: int) -> list[Replay]:
    nats = EmbeddedNats(tmp / f"nats-{events}").start()
    pg = EmbeddedPostgres(tmp / f"pg-{events}").start()
    try:
        t = time.perf_counter()
        await fill(nats.url, events)
        print(f"loaded {events:,} events in {time.perf_counter() - t:.1f} s", flush=True)
        out = []
        for service in ("crm", "analytics"):
            seconds, rss = rebuild(service, nats.url, pg.url, tmp / f"{service}-{events}.log")
            replay = Replay(service, events, seconds, rss, await table_mb(pg.url, service))
            print(replay.line(), flush=True)
            out.append(replay)
        return out
    finally:
        pg.stop()
        nats.stop()


def outbound_scaling() -> list[str]:
    """bench_outbound.py's CPU line and result at 1, 2 and 3 instances."""
    lines = []
    for instances in (1, 2, 3):
        env = {
            **os.environ,
            "BENCH_INSTANCES": str(instances),
            "BENCH_MESSAGES": OUTBOUND_MESSAGES,
            "BENCH_RECIPIENTS": "0",
        }
        out = subprocess.run(
            [sys.executable, str(Path(__file__).parent / "bench_outbound.py")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        cpu = next((line for line in out if line.startswith("backlog CPU")), "no CPU line")
        lines.append(f"outbound x{instances}: {cpu}; {out[-1] if out else ''}")
        print(lines[-1], flush=True)
    return lines


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-growth-"))
    results = [await measure(tmp, size) for size in SIZES]
    scaling = outbound_scaling() + await ingest_scaling()
    print()
    print("\n".join(scaling))
    for replays in results:
        for replay in replays:
            print(replay.line())
    small, large = results[0], results[-1]
    ratio = large[0].rate / small[0].rate
    analytics_ratio = large[1].rate / small[1].rate
    print(
        f"size x{SIZES[-1] / SIZES[0]:g}: crm events/s x{ratio:.2f}, analytics events/s "
        f"x{analytics_ratio:.2f}; peak RSS crm x{large[0].peak_rss_mb / small[0].peak_rss_mb:.2f}, "
        f"analytics x{large[1].peak_rss_mb / small[1].peak_rss_mb:.2f}"
    )
    print(
        f"replay_growth_ratio={ratio:.2f} "
        f"analytics_growth_ratio={analytics_ratio:.2f} "
        f"crm_rss_growth={large[0].peak_rss_mb / small[0].peak_rss_mb:.2f} "
        f"analytics_rss_growth={large[1].peak_rss_mb / small[1].peak_rss_mb:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
