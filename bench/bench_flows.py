"""`just bench flows`: how fast a flow answers, and what a flow step costs over the bus.

1. **Reply latency.** ingest, outbound and one flows instance run as processes (default
   settings) with the demo flow published on one bot of the sandbox Telegram (in this
   process). New conversations arrive at 25/s (`BENCH_FLOWS_RATE`) for
   `BENCH_FLOWS_SECONDS`: each is a `/start` webhook from a new chat, timed from the POST to
   the sandbox accepting the flow's greeting (its sendMessage handler returning), open loop
   from each request's scheduled time.
2. **Steps per second.** With the services stopped, `BENCH_FLOWS_BACKLOG` messages that each
   start a 3-step flow (set, branch, send) are stored in CONV; a flows instance then works
   through the backlog. Steps/s is the steps recorded over the span of the run records'
   stream timestamps. Baseline, same run, same messages: a plain nats-py durable pull
   consumer that acknowledges each message (``fetch`` + ``ack``), messages/s.
Prints, last: `flows_reply_p99_ms=<x> flows_steps_ratio=<y> steps_per_s=<z>`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from accounts import new_keys, store_telegram
from streams import batches
from switchboard.events import encode
from switchboard.events.catalog.conv import MessageReceived
from switchboard.events.catalog.flows import RunRecorded
from switchboard.flows.demo import DEMO_FLOW
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats, free_port
from switchboard.runtime.testing import ServiceProcess
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.telegram.methods.base import REGISTRY
from switchboard.sandbox.testing import serve

RATE = float(os.environ.get("BENCH_FLOWS_RATE", "25"))
SECONDS = float(os.environ.get("BENCH_FLOWS_SECONDS", "20"))
BACKLOG = int(os.environ.get("BENCH_FLOWS_BACKLOG", "3000"))
TOKEN = "710000001:bench-flows"
SECRET = "bench-flows-secret"
KEY = "bench-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}

STEPS_FLOW: dict[str, Any] = {
    "name": "Three steps",
    "triggers": [{"type": "keyword", "keywords": ["steps"]}],
    "start": "mark",
    "steps": {
        "mark": {"type": "set", "var": "seen", "value": "{{ message.text }}", "next": "route"},
        "route": {
            "type": "branch",
            "cases": [{"when": {"type": "var", "name": "seen", "op": "exists"}, "next": "say"}],
        },
        "say": {"type": "end", "text": "Three steps, {{ contact.first_name }}."},
    },
}


def accepted_times() -> dict[int, float]:
    """Wrap the sandbox's sendMessage: when (wall clock) it accepted each chat's first."""
    name, handler = REGISTRY["sendmessage"]
    seen: dict[int, float] = {}

    async def timed(call: Any) -> Any:
        result = await handler(call)
        chat = int(result["chat"]["id"])
        seen.setdefault(chat, time.time())
        return result

    REGISTRY["sendmessage"] = (name, timed)
    return seen


def start_update(update_id: int, chat: int) -> dict[str, Any]:
    user = {"id": chat, "is_bot": False, "first_name": "Ada", "language_code": "en"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "from": user,
            "chat": {"id": chat, "type": "private", "first_name": "Ada"},
            "date": int(time.time()),
            "text": "/start",
        },
    }


@asynccontextmanager
async def running(
    tmp: Path, env: dict[str, str], phase: str, *services: str
) -> AsyncIterator[list[ServiceProcess]]:
    """``services`` as processes on free ports with ``env`` (logs ``<service>-<phase>.log``),
    ready; stopped on leaving. Each phase of this benchmark stands up its services so."""
    procs: list[ServiceProcess] = []
    try:
        for s in services:
            port = free_port()
            procs.append(
                ServiceProcess(
                    f"switchboard.{s}",
                    {**env, f"SWITCHBOARD_{s.upper()}_HTTP_PORT": str(port)},
                    tmp / f"{s}-{phase}.log",
                    port=port,
                ).start()
            )
        for p in procs:
            await p.ready(120)
        yield procs
    finally:
        for p in procs:
            p.stop()


async def publish_flow(http: httpx.AsyncClient, flows: str, doc: dict[str, Any]) -> None:
    r = await http.post(f"{flows}/v1/flows", json=doc, headers=AUTH)
    r.raise_for_status()
    flow_id = r.json()["id"]
    (await http.post(f"{flows}/v1/flows/{flow_id}/publish", headers=AUTH)).raise_for_status()


async def reply_latency(
    tmp: Path, env: dict[str, str], sandbox: str, box: Sandbox
) -> tuple[list[float], int]:
    """Milliseconds from each /start POST (its scheduled time) to the greeting accepted."""
    seen = accepted_times()
    async with running(tmp, env, "reply", "ingest", "outbound", "flows") as procs:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            await publish_flow(http, procs[2].url, DEMO_FLOW)
            await asyncio.sleep(1.0)  # the flows library polls definitions 4x a second
            total = int(RATE * SECONDS)
            sent: dict[int, float] = {}
            start = time.time() + 0.2

            async def one(i: int) -> None:
                chat = 5_000_000 + i
                at = start + i / RATE
                await asyncio.sleep(max(0.0, at - time.time()))
                sent[chat] = at
                r = await http.post(
                    f"{procs[0].url}/webhooks/telegram/demo",
                    json=start_update(1000 + i, chat),
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                )
                r.raise_for_status()

            await asyncio.gather(*(one(i) for i in range(total)))
            deadline = time.perf_counter() + 120
            # a bench, not a test: polling the wrapped handler's record is the simplest wait
            while len([c for c in sent if c in seen]) < total and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        lat = sorted((seen[c] - t) * 1000 for c, t in sent.items() if c in seen)
        await stages(procs[0].env["SWITCHBOARD_NATS_URL"], sent, seen)
        return lat, total - len(lat)


async def _stored_at(bus: Bus, stream: str, subject: str, chat_of: Any) -> dict[int, float]:
    """When (stream timestamp) the first message of each chat was stored."""
    out: dict[int, float] = {}
    keys = pii.PiiKeys(await bus.kv(pii.BUCKET))  # chat ids are sealed personal data
    async for msgs in batches(bus, stream, subject, 512):
        found = await keys.prefetch(m.data for m in msgs)
        for m in msgs:
            m.data = keys.open_body(m.data, found)
            chat = chat_of(m)
            if chat is not None:
                out.setdefault(chat, m.metadata.timestamp.timestamp())
    return out


async def stages(nats_url: str, sent: dict[int, float], seen: dict[int, float]) -> None:
    """Where the time goes: POST -> CONV (ingest, normalizer) -> FLOWS (the decision) ->
    accepted by the sandbox (effects, outbound, the provider call); p50/p99 of each."""
    bus = await Bus.connect(nats_url, name="bench-stages")
    try:
        conv = await _stored_at(
            bus, "CONV", "conv.message_received.>",
            lambda m: int(json.loads(m.data)["chat"]["id"]),
        )  # fmt: skip
        flows = await _stored_at(
            bus, "FLOWS", "flows.run_recorded.>",
            lambda m: int(json.loads(m.data)["conversation"]["chat_id"]),
        )  # fmt: skip
    finally:
        await bus.close()
    chats = [c for c in sent if c in conv and c in flows and c in seen]
    parts = {
        "post->CONV": [conv[c] - sent[c] for c in chats],
        "CONV->FLOWS": [flows[c] - conv[c] for c in chats],
        "FLOWS->accepted": [seen[c] - flows[c] for c in chats],
    }
    for name, values in parts.items():
        ms = sorted(v * 1000 for v in values)
        if ms:
            p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
            print(f"  {name}: p50={statistics.median(ms):.1f} ms p99={p99:.1f} ms", flush=True)


async def store_backlog(bus: Bus, count: int) -> None:
    now = datetime.now(UTC)
    pending = []
    for i in range(count):
        ev = MessageReceived.model_validate(
            {
                "channel": "telegram",
                "account": "demo",
                "chat": {"id": str(8_000_000 + i)},
                "sender": {"id": str(8_000_000 + i), "first_name": "Ada"},
                "content": {"kind": "text", "text": "steps please"},
                "provider": {"message_id": str(i)},
                "sent_at": now.isoformat(),
                "received_at": now.isoformat(),
            }
        )
        enc = encode(ev, source="bench", workspace_id="bench", id=f"backlog-{i}")
        pending.append(bus.js.publish(enc.subject, enc.body, headers=enc.headers))
        if len(pending) >= 500:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def baseline_rate(bus: Bus) -> float:
    """Messages/s of a plain durable pull consumer acking each message of CONV."""
    await bus.js.add_consumer(
        "CONV",
        ConsumerConfig(
            durable_name="bench-baseline",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subjects=["conv.message_received.>"],
            max_ack_pending=4096,
        ),
    )
    count = (await bus.js.consumer_info("CONV", "bench-baseline")).num_pending
    sub = await bus.js.pull_subscribe_bind(durable="bench-baseline", stream="CONV")
    got = 0
    start = time.perf_counter()
    while got < count:
        msgs = await sub.fetch(64, timeout=5)
        await asyncio.gather(*(m.ack() for m in msgs))
        got += len(msgs)
    elapsed = time.perf_counter() - start
    await sub.unsubscribe()
    await bus.js.delete_consumer("CONV", "bench-baseline")
    return got / elapsed


async def conversations_settled(bus: Bus, within_s: float) -> None:
    """Wait (up to ``within_s``) until flows has settled every conversation event."""
    deadline = time.perf_counter() + within_s
    while time.perf_counter() < deadline:
        info = await bus.js.consumer_info("CONV", "flows-conversations")
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.25)


async def steps_rate(tmp: Path, env: dict[str, str], bus: Bus, count: int) -> tuple[int, float]:
    """Steps recorded per second while one flows instance works through the backlog."""
    async with running(tmp, env, "steps", "flows"):
        await conversations_settled(bus, 600)
    steps, first, last = 0, None, None
    async for msgs in batches(bus, "FLOWS", "flows.run_recorded.>", 512):
        for m in msgs:
            body = RunRecorded.model_validate_json(m.data)
            if body.flow_id and body.input_kind.startswith("start:keyword"):
                steps += len(body.steps)
                at = m.metadata.timestamp
                first = at if first is None else min(first, at)
                last = at if last is None else max(last, at)
    span = (last - first).total_seconds() if first and last else float("nan")
    return steps, steps / span if span > 0 else float("nan")


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-flows-"))
    nats = EmbeddedNats(tmp / "nats").start()
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "bench_flows_bot")
    keys = new_keys()
    try:
        async with serve(box.app()) as sandbox:
            bus = await Bus.connect(nats.url, name="bench")
            await bus.provision()
            await store_telegram(
                bus, keys, {"demo": {"token": TOKEN, "webhook_secret": SECRET}}, sandbox
            )
            env = {
                "SWITCHBOARD_NATS_URL": nats.url,
                "SWITCHBOARD_ENCRYPTION_KEYS": keys,
                "SWITCHBOARD_API_KEYS": f"{KEY}=bench",
                "SWITCHBOARD_LOG_LEVEL": "warning",
                "SWITCHBOARD_INGEST_PUBLIC_URL": "http://127.0.0.1:1",
            }
            lat, missing = await reply_latency(tmp, env, sandbox, box)
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(
                f"reply at {RATE:.0f} new conversations/s for {SECONDS:.0f} s: {len(lat)} "
                f"answered, {missing} not within 60 s, p50={p50:.1f} ms p99={p99:.1f} ms "
                f"max={lat[-1]:.1f} ms",
                flush=True,
            )
            # Steps: publish the 3-step flow, let flows catch up idle, then the backlog.
            async with running(tmp, env, "publish", "flows") as (flows,):
                async with httpx.AsyncClient(timeout=30) as http:
                    await publish_flow(http, flows.url, STEPS_FLOW)
                await conversations_settled(bus, 60)  # the reply phase's inputs
            await store_backlog(bus, BACKLOG)
            base = await baseline_rate(bus)
            steps, rate = await steps_rate(tmp, env, bus, BACKLOG)
            print(
                f"steps: {steps} steps of {BACKLOG} runs at {rate:.0f} steps/s; baseline "
                f"(nats-py pull + ack, same messages): {base:.0f} msgs/s",
                flush=True,
            )
            await bus.close()
            print(
                f"flows_reply_p99_ms={p99:.1f} flows_steps_ratio={rate / base:.3f} "
                f"steps_per_s={rate:.0f}"
            )
    finally:
        nats.stop()
        await box.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
