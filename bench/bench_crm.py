"""`just bench crm`: the CRM projection's replay speed and webhook-to-visible latency.

1. Loads 100k realistic conv events (messages from 5k people on three channels, edits,
   outbound messages), then measures how fast plain nats-py pulls and acks them all
   (the baseline, before and after the replay), and how fast ``switchboard crm rebuild``
   replays them into fresh tables and swaps those in, end to end (connections,
   migrations, the replay, the indexes built after it, the swap).
2. Runs ingest and crm as processes and posts Telegram webhooks at 500/s for a while,
   timing each message from its POST to its row being visible to the API's queries.
Prints, last: `crm_replay_ratio=<x> events_per_s=<y> e2e_p99_ms=<z>`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.crm.cli import tune_gc_for_replay
from switchboard.crm.rebuild import rebuild
from switchboard.crm.settings import CrmSettings
from switchboard.events import encode
from switchboard.events.catalog.common import Channel, Chat, Sender
from switchboard.events.catalog.conv import (
    MessageEdited,
    MessageReceived,
    MessageSent,
    ProviderIds,
    TextContent,
)
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats, EmbeddedPostgres, free_port

EVENTS = int(os.environ.get("BENCH_EVENTS", "100000"))
E2E_SECONDS = float(os.environ.get("BENCH_E2E_SECONDS", "10"))
E2E_RATE = float(os.environ.get("BENCH_E2E_RATE", "500"))
WORDS = [
    "hello",
    "price",
    "order",
    "delivery",
    "bike",
    "red",
    "blue",
    "when",
    "where",
    "thanks",
    "invoice",
    "refund",
]


def realistic(n: int, rng: random.Random) -> list[object]:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    out: list[object] = []
    channels = (Channel.TELEGRAM, Channel.WHATSAPP, Channel.VIBER)
    received: list[MessageReceived] = []
    for i in range(n):
        person = rng.randrange(5000)
        channel = channels[person % 3]
        sender = f"{channel.value[:2]}{person}"
        at = t0 + timedelta(seconds=i)
        roll = rng.random()
        if roll < 0.05 and received:
            base = rng.choice(received)
            out.append(
                MessageEdited(
                    channel=base.channel,
                    account=base.account,
                    chat=base.chat,
                    provider=base.provider,
                    received_at=at,
                    sender=base.sender,
                    content=TextContent(text="edited " + base.content.text),  # type: ignore[union-attr]
                    edited_at=at,
                )
            )
        elif roll < 0.25:
            out.append(
                MessageSent(
                    channel=channel,
                    account="acct",
                    chat=Chat(id=sender),
                    message_id=f"m{i}",
                    provider_message_id=f"p{i}",
                    text="We will get back to you",
                    content_kind="text",
                    sent_at=at,
                )
            )
        else:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12)))
            msg = MessageReceived(
                channel=channel,
                account="acct",
                chat=Chat(id=sender),
                sender=Sender(
                    id=sender,
                    display_name=f"Person {person}",
                    phone=str(4917600000000 + person) if channel is Channel.WHATSAPP else None,
                ),
                content=TextContent(text=text),
                provider=ProviderIds(message_id=str(i)),
                sent_at=at,
                received_at=at,
            )
            received.append(msg)
            out.append(msg)
    return out


async def load(bus: Bus, events: list[object]) -> None:
    pending = []
    for ev in events:
        enc = encode(ev, source="bench", workspace_id="bench")  # type: ignore[arg-type]
        pending.append(bus.js.publish(enc.subject, enc.body, headers=enc.headers))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def baseline(bus: Bus, total: int) -> float:
    sub = await bus.js.pull_subscribe(
        "conv.>",
        durable=None,
        stream="CONV",
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL),
    )
    got, start = 0, time.perf_counter()
    while got < total:
        try:
            msgs = await sub.fetch(1000, timeout=2)
        except NatsTimeout:
            break
        for m in msgs:
            await m.ack()
        got += len(msgs)
    elapsed = time.perf_counter() - start
    await sub.unsubscribe()
    return got / elapsed


async def replay(nats_url: str, pg_url: str, total: int) -> float:
    settings = CrmSettings(nats_url=nats_url, database_url=pg_url, api_keys={"bench": "bench"})
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


async def e2e(tmp: Path, nats_url: str, pg_url: str) -> list[float]:
    """POST at a fixed rate; a poller sees rows appear; latency per message in ms."""
    from switchboard.events.catalog.common import Channel as Ch
    from switchboard.runtime.accounts import Account, AccountStore
    from switchboard.runtime.crypto import Keyring
    from switchboard.runtime.settings import parse_keyring

    keys = f"b1:{Keyring.generate_key()}"
    bus = await Bus.connect(nats_url, name="bench-setup")
    store = AccountStore(await bus.kv("accounts"), Keyring.from_mapping(parse_keyring(keys)))
    await store.put(
        Account(
            channel=Ch.TELEGRAM,
            id="bench",
            workspace_id="bench",
            secrets={"token": "1:b", "webhook_secret": "s"},
        )
    )
    await bus.close()
    ingest_port, crm_port = free_port(), free_port()
    env = {
        **os.environ,
        "SWITCHBOARD_NATS_URL": nats_url,
        "SWITCHBOARD_DATABASE_URL": pg_url,
        "SWITCHBOARD_ENCRYPTION_KEYS": keys,
        "SWITCHBOARD_API_KEYS": "bench-key-1=bench",
        "SWITCHBOARD_LOG_LEVEL": "warning",
        "SWITCHBOARD_CRM_PROJECTION_BATCH": "200",
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
            conn = await asyncpg.connect(pg_url)
            total = int(E2E_SECONDS * E2E_RATE)
            start_at = time.time() + 1.0
            # The load runs in its own process (this one only watches the table); message i
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
                env={**os.environ, "LOADGEN_START_AT": str(start_at)},
                stdout=asyncio.subprocess.PIPE,
            )
            seen: dict[int, float] = {}
            last = 0
            deadline = start_at + E2E_SECONDS + 30
            while len(seen) < total and time.time() < deadline:
                rows = await conn.fetch(
                    "SELECT provider_message_id, stream_seq FROM crm.messages "
                    "WHERE stream_seq > $1",
                    last,
                )
                now = time.time()
                for r in rows:
                    seen.setdefault(int(r["provider_message_id"]), now)
                    last = max(last, r["stream_seq"])
                await asyncio.sleep(0.005)
            out, _ = await load.communicate()
            print(f"load generator: {out.decode().strip()}")
            await conn.close()
            return [(at - (start_at + (n - 1) / E2E_RATE)) * 1000 for n, at in seen.items()]

    finally:
        for p in procs:
            p.terminate()
            p.wait(30)


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-crm-"))
    nats = EmbeddedNats(tmp / "nats").start()
    pg = EmbeddedPostgres(tmp / "pg").start()
    try:
        bus = await Bus.connect(nats.url, name="bench")
        await bus.provision()
        events = realistic(EVENTS, random.Random(42))
        t = time.perf_counter()
        await load(bus, events)
        print(f"loaded {len(events):,} conv events in {time.perf_counter() - t:.1f} s")
        del events  # 100k models the replay process would not hold (the GC would rescan them)
        # The baseline runs before and after the replay and counts as their mean: the
        # machine is shared, and a load that comes or goes between the two measurements
        # would otherwise tilt the ratio either way.
        before = await baseline(bus, EVENTS)
        rate = await replay(nats.url, pg.url, EVENTS)
        after = await baseline(bus, EVENTS)
        base = (before + after) / 2
        print(
            f"baseline: plain nats-py pull + ack: {base:,.0f} events/s "
            f"(before {before:,.0f}, after {after:,.0f})"
        )
        print(f"replay: crm rebuild from empty: {rate:,.0f} events/s")
        await bus.close()
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
        print(f"crm_replay_ratio={rate / base:.2f} events_per_s={rate:.0f} e2e_p99_ms={p99:.1f}")
    finally:
        pg.stop()
        nats.stop()


if __name__ == "__main__":
    asyncio.run(main())
