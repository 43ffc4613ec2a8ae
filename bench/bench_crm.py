"""`just bench crm`: the CRM projections' replay speed and webhook-to-visible latency.

1. Loads realistic traffic (bench/traffic.py: messages, edits, replies with their delivery
   events and receipts, contacts and leads) into CONV, DELIVERY and CRM, then measures how
   fast the production reader (the projection's puller, ack-less, the rebuild's batch size)
   reads it all with the three CRM projections' readers at once and an apply that does
   nothing (the baseline, before and after the replay), and how fast ``switchboard crm
   rebuild`` replays all three projections into fresh tables and swaps those in, end to end
   (connections, migrations, the replay, the indexes built after it, the swap).
2. Runs ingest and crm as processes with their default settings (normalizer on, default
   projection batch) and posts Telegram webhooks at 500/s for a while, timing each message
   from its POST to its being listed by the CRM HTTP API.
`BENCH_EVENTS`, `BENCH_E2E_SECONDS`, `BENCH_E2E_RATE` set the sizes; `BENCH_SEALED=1` loads
CONV and DELIVERY sealed as the producers publish them (crypto-shredding's replay cost).
Prints, last: `crm_replay_ratio=<x> events_per_s=<y> e2e_p99_ms=<z>`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

import traffic
from accounts import new_keys, store_telegram
from fair_baseline import replay_against_baseline
from processes import stop
from streams import batches
from switchboard.crm.app import PROJECTIONS
from switchboard.crm.cli import tune_gc_for_replay
from switchboard.crm.rebuild import rebuild
from switchboard.crm.settings import CrmSettings
from switchboard.events import Encoded, Message, encode
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from switchboard.runtime.identity import keyed_hash

EVENTS = int(os.environ.get("BENCH_EVENTS", "100000"))
E2E_SECONDS = float(os.environ.get("BENCH_E2E_SECONDS", "10"))
E2E_RATE = float(os.environ.get("BENCH_E2E_RATE", "500"))
# BENCH_SEALED=1: CONV and DELIVERY events sealed as ingest and outbound publish them
# (crypto-shredding), so the replay opens every personal field.
SEALED = os.environ.get("BENCH_SEALED", "") == "1"


async def load(bus: Bus, events: list[tuple[Message, datetime]]) -> None:
    """``events`` loaded, CONV and DELIVERY sealed as their producers seal them with
    ``BENCH_SEALED=1``."""
    if not SEALED:
        await traffic.load(bus, events)
        return
    keys = pii.PiiKeys(await bus.kv(pii.BUCKET))

    async def encoded(ev: Message, at: datetime) -> Encoded:
        if ev.name.split(".")[0] in ("conv", "delivery"):
            return await sealed(keys, ev, at)
        return await traffic.plain(ev, at)

    await traffic.load(bus, events, encoded)


async def sealed(keys: pii.PiiKeys, ev: Message, at: datetime) -> Encoded:
    """``ev`` encoded as ``pii.publish_sealed`` publishes it (the producers' sealing)."""
    natural = ev.deterministic_id()
    event_id = pii.event_id("bench", natural) if natural and not ev.caller_keyed else None
    model = await pii.seal_model(keys, "bench", ev)
    enc = encode(model, source="bench", id=event_id, workspace_id="bench", time=at)
    subject = ev.ce_subject()
    if subject:
        enc.headers["ce-subject"] = "p1:" + keyed_hash("ce-subject", "bench", subject)
    return enc


def settings_for(nats_url: str, pg_url: str) -> CrmSettings:
    return CrmSettings(nats_url=nats_url, database_url=pg_url, api_keys={"bench": "bench"})


async def replay(nats_url: str, pg_url: str, total: int) -> float:
    settings = settings_for(nats_url, pg_url)
    # As `switchboard crm rebuild` does after its imports; undone after, for the baseline.
    gc.collect()
    thresholds = gc.get_threshold()
    tune_gc_for_replay()
    try:
        start = time.perf_counter()
        await rebuild(settings, log=lambda line: print(f"  rebuild: {line}"))
        return total / (time.perf_counter() - start)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class ApiWatcher:
    """Sees load messages appear through the CRM API a user would read them from: the
    newest-first message search, paged back until the last message already seen."""

    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http, self.base = http, base
        self.headers = {"Authorization": "Bearer bench-key-1"}
        self.seen: dict[int, float] = {}
        self.top = 0  # the highest stream_seq seen so far
        self.polls = 0
        self.durations: list[float] = []  # each request's round trip, ms

    async def poll(self) -> None:
        params: dict[str, str | int] = {"text": "load", "limit": 100}
        newest = self.top
        while True:
            self.polls += 1
            sent = time.perf_counter()
            r = await self.http.get(
                f"{self.base}/v1/messages/search", params=params, headers=self.headers
            )
            r.raise_for_status()
            self.durations.append((time.perf_counter() - sent) * 1000)
            page = r.json()
            now = time.time()
            for item in page["items"]:
                self.seen.setdefault(int(item["provider_message_id"]), now)
                newest = max(newest, int(item["stream_seq"]))
            items, cursor = page["items"], page["next_cursor"]
            if not cursor or not items or int(items[-1]["stream_seq"]) <= self.top:
                break
            params["cursor"] = cursor  # more arrived than one page since the last poll
        self.top = newest


async def _stored_at(bus: Bus, stream: str, number_of: Any) -> dict[int, tuple[float, int]]:
    """When (the stream's timestamp) and where (its sequence) each load message was stored
    in ``stream``."""
    out: dict[int, tuple[float, int]] = {}
    async for msgs in batches(bus, stream):
        for m in msgs:
            at = m.metadata.timestamp.timestamp()
            out.setdefault(number_of(json.loads(m.data)), (at, m.metadata.sequence.stream))
    return out


async def stages(
    nats_url: str, due: dict[int, float], seen: dict[int, float], projected: list[tuple[float, int]]
) -> None:
    """Where the time goes: due -> RAW (ingest answered), RAW -> CONV (the normalizer),
    CONV -> projected (the CRM's conversations checkpoint passed it), projected -> listed by
    the API (the watcher's polls)."""
    bus = await Bus.connect(nats_url, name="bench-stages")
    try:
        raw = await _stored_at(bus, "RAW", lambda body: int(body["update_id"]))
        conv = await _stored_at(bus, "CONV", lambda body: int(body["provider"]["message_id"]))
    finally:
        await bus.close()
    ids = [n for n in due if n in raw and n in conv]
    done_at = {n: _first_past(projected, conv[n][1]) for n in ids}
    ids = [n for n in ids if done_at[n] is not None]
    parts = {
        "due->RAW": [raw[n][0] - due[n] for n in ids],
        "RAW->CONV": [conv[n][0] - raw[n][0] for n in ids],
        "CONV->projected": [done_at[n] - conv[n][0] for n in ids],  # type: ignore[operator]
        "projected->API": [seen[n] - done_at[n] for n in ids],  # type: ignore[operator]
    }
    start_at = min(due.values())
    for name, values in parts.items():
        ms = sorted(v * 1000 for v in values)
        if ms:
            p50, p99 = statistics.median(ms), ms[int(len(ms) * 0.99)]
            seconds: dict[int, list[float]] = {}
            for n, v in zip(ids, values, strict=True):
                seconds.setdefault(int(due[n] - start_at), []).append(v * 1000)
            tails = " ".join(f"{_p99(seconds[s]):.0f}" for s in sorted(seconds))
            print(f"  {name}: p50={p50:.1f} ms p99={p99:.1f} ms (p99 by second: {tails})")


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.99)]


def by_second(due: dict[int, float], seen: dict[int, float], start_at: float) -> None:
    """The p99 of the messages due in each second of the run: a tail made by the first
    second (every sender new: contacts, leads and conversations created) shows apart from
    one that lasts."""
    seconds: dict[int, list[float]] = {}
    for n, at in seen.items():
        seconds.setdefault(int(due[n] - start_at), []).append((at - due[n]) * 1000)
    p99s = " ".join(f"{_p99(seconds[s]):.0f}" for s in sorted(seconds))
    print(f"  p99 ms by second of the run: {p99s}")


def _first_past(projected: list[tuple[float, int]], seq: int) -> float | None:
    """When the checkpoint was first seen at or past ``seq``."""
    return next((at for at, s in projected if s >= seq), None)


async def watch_checkpoint(pg_url: str, stop: asyncio.Event) -> list[tuple[float, int]]:
    """The CRM conversations projection's checkpoint over time (polled every 5 ms)."""
    import asyncpg

    conn = await asyncpg.connect(pg_url)
    out: list[tuple[float, int]] = []
    try:
        while not stop.is_set():
            try:
                seq = await conn.fetchval(
                    "SELECT seq FROM crm.checkpoints WHERE projection = 'conversations'"
                )
            except asyncpg.UndefinedTableError:
                seq = None
            if seq is not None and (not out or seq > out[-1][1]):
                out.append((time.time(), int(seq)))
            await asyncio.sleep(0.005)
    finally:
        await conn.close()
    return out


async def e2e(tmp: Path, nats_url: str, pg_url: str) -> list[float]:
    """POST at a fixed rate; the API watcher sees messages appear; latency per message in ms."""
    keys = new_keys()
    bus = await Bus.connect(nats_url, name="bench-setup")
    await store_telegram(bus, keys, {"bench": {"token": "1:b", "webhook_secret": "s"}})
    await bus.close()
    ingest_port, crm_port = free_port(), free_port()
    env = {
        **os.environ,
        "SWITCHBOARD_NATS_URL": nats_url,
        "SWITCHBOARD_DATABASE_URL": pg_url,
        "SWITCHBOARD_ENCRYPTION_KEYS": keys,
        "SWITCHBOARD_API_KEYS": "bench-key-1=bench",
        "SWITCHBOARD_LOG_LEVEL": "warning",
        "SWITCHBOARD_INGEST_HTTP_PORT": str(ingest_port),
        "SWITCHBOARD_CRM_HTTP_PORT": str(crm_port),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", f"switchboard.{s}"],
            env=env,
            stdout=(tmp / f"{s}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for s in ("ingest", "crm")
    ]
    try:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            for port in (ingest_port, crm_port):
                for _ in range(300):
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
            total = int(E2E_SECONDS * E2E_RATE)
            start_at = time.time() + 1.0
            # The load runs in its own process (this one only watches the API); message i
            # carries update_id i and was due at start_at + (i - 1) / rate.
            load = await asyncio.create_subprocess_exec(
                sys.executable,
                str(Path(__file__).parent / "loadgen.py"),
                "/webhooks/telegram/bench",
                "127.0.0.1",
                str(ingest_port),
                "open",
                str(E2E_SECONDS),
                str(E2E_RATE),
                "X-Telegram-Bot-Api-Secret-Token: s",
                env={**os.environ, "LOADGEN_START_AT": str(start_at), "LOADGEN_FIRST_ID": "1"},
                stdout=asyncio.subprocess.PIPE,
            )
            api = ApiWatcher(http, f"http://127.0.0.1:{crm_port}")
            watching = asyncio.Event()
            checkpoints = asyncio.create_task(watch_checkpoint(pg_url, watching))
            deadline = start_at + E2E_SECONDS + 30
            while len(api.seen) < total and time.time() < deadline:
                await api.poll()
                await asyncio.sleep(0.01)
            watching.set()
            projected = await checkpoints
            out, _ = await load.communicate()
            print(f"load generator: {out.decode().strip()}; API polls: {api.polls}")
            took = sorted(api.durations)
            print(
                f"  API poll round trip: p50={statistics.median(took):.1f} ms "
                f"p99={_p99(took):.1f} ms max={took[-1]:.1f} ms"
            )
            seen = api.seen
            due = {n: start_at + (n - 1) / E2E_RATE for n in seen}
            await stages(nats_url, due, seen, projected)
            by_second(due, seen, start_at)
            return [(at - due[n]) * 1000 for n, at in seen.items()]

    finally:
        stop(procs)


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-crm-"))
    run = await replay_against_baseline(
        tmp,
        traffic.realistic(EVENTS, random.Random(42), people=5000),
        PROJECTIONS,
        lambda nats_url, pg_url: settings_for(nats_url, pg_url).rebuild_batch,
        replay,
        load,
    )
    rate, base = run.rate, run.base
    print(f"replay: crm rebuild (all {run.readers} projections) from empty: {rate:,.0f} events/s")
    # a fresh stack for the latency run, so the 100k backlog does not count
    nats2 = EmbeddedNats(tmp / "nats2").start()
    pg2 = EmbeddedPostgres(tmp / "pg2").start()
    b2 = await Bus.connect(nats2.url, name="bench")
    await b2.provision()
    await b2.close()
    try:
        lat = sorted(await e2e(tmp, nats2.url, pg2.url))
    finally:
        nats2.stop()
        pg2.stop()
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99)] if lat else float("nan")
    print(f"e2e at {E2E_RATE:.0f}/s: {len(lat)} visible, p50={p50:.1f} ms p99={p99:.1f} ms")
    print(
        f"sealed={SEALED} crm_replay_ratio={rate / base:.2f} events_per_s={rate:.0f} "
        f"e2e_p99_ms={p99:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
