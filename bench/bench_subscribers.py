"""FastStream's pull subscriber against the runtime's own batch reader, on the same stream in
the same run: is a durable consumer measurably slower through FastStream?

Both read the same backlog of small messages from their own durable (same filter, same
batch size, same concurrency) and settle every message through ``handle_delivery`` with a
handler that does nothing, so only the reader differs:

* ``batch_pull``: ``consumer.PullWorker`` on ``delivery.pull.BatchPull``;
* ``faststream``: ``subscribers.serve`` (FastStream ``PullSub`` on nats-py's ``fetch``).

Runs alternate (batch_pull, faststream, batch_pull, ...) and the best of each is reported,
with the ratio faststream / batch_pull in messages per second. The issue's rule: a hot path
keeps the raw reader only where FastStream is more than 20 % slower.

    uv run python bench/bench_subscribers.py            # BENCH_MESSAGES=20000 BENCH_ROUNDS=3
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from faststream import AckPolicy
from faststream.nats import JStream, NatsMessage, PullSub
from nats.aio.msg import Msg

from switchboard.events.topology import Durable
from switchboard.runtime import subscribers
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import Handler, PullWorker, handle_delivery
from switchboard.runtime.embedded import EmbeddedNats
from switchboard.runtime.failures import PoisonBudget
from switchboard.runtime.subscribers import Subscription

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "20000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BATCH = 128  # the normalizer's
CONCURRENCY = 16
SUBJECT = "raw.bench.v1.acct"


def _subscription(name: str) -> Subscription:
    durable = Durable(
        stream="RAW",
        name=name,
        filter_subjects=("raw.bench.>",),
        description="benchmark",
        max_ack_pending=20_000,
    )
    return Subscription(durable, batch=BATCH, concurrency=CONCURRENCY)


async def _backlog(bus: Bus) -> None:
    body = json.dumps({"update_id": 1, "message": {"text": "x" * 200}}).encode()
    pending = []
    for i in range(MESSAGES):
        pending.append(bus.js.publish(SUBJECT, body, headers={"Nats-Msg-Id": f"b{i}"}))
        if len(pending) == 500:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def _run(bus: Bus, reader: str, name: str) -> float:
    """Seconds until every message of the backlog was handled and acked by ``reader``."""
    sub = _subscription(name)
    done = asyncio.Event()
    count = 0

    async def handler(_: Msg) -> None:
        nonlocal count
        count += 1
        if count == MESSAGES:
            done.set()

    stop = asyncio.Event()
    started = time.perf_counter()
    if reader == "batch_pull":
        worker = PullWorker(bus, sub.spec, handler, stop=stop, concurrency=CONCURRENCY)
        task = asyncio.create_task(worker.run())
    elif reader == "faststream_batch":
        task = asyncio.create_task(_faststream_batch(bus, sub, handler, stop))
    else:
        task = asyncio.create_task(subscribers.serve(bus, {sub: handler}, stop))
    await done.wait()
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return elapsed


async def _faststream_batch(
    bus: Bus, sub: Subscription, handler: Handler, stop: asyncio.Event
) -> None:
    """FastStream's batch subscriber (``PullSub(batch=True)``): one handler call per batch,
    each message of it settled by the failure policy. Not what the services run (a batch
    waits for its timeout to fill under a trickle); measured to see what FastStream's
    per-message dispatch costs."""
    spec, budget = sub.spec, PoisonBudget()
    sem = asyncio.Semaphore(CONCURRENCY)
    await subscribers.ensure_durables(bus, [sub])
    broker = subscribers.BusBroker(bus, logger=None)

    async def one(msg: Msg) -> None:
        async with sem:
            await handle_delivery(bus, msg, spec, budget, handler)

    async def batch(msgs):  # type: ignore[no-untyped-def]
        await asyncio.gather(*(one(m) for m in msgs))

    async def raw(message: NatsMessage) -> list[Msg]:
        batch: list[Msg] = message.raw_message  # type: ignore[assignment]  # a batch's
        return batch

    broker.subscriber(
        config=spec.config(),
        durable=spec.durable,
        stream=JStream(spec.stream, declare=False),
        pull_sub=PullSub(spec.batch, timeout=0.05, batch=True),
        ack_policy=AckPolicy.MANUAL,
        decoder=raw,
    )(batch)
    await broker.start()
    await stop.wait()
    await broker.stop()


async def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        nats = EmbeddedNats(Path(tmp) / "nats").start()
        try:
            bus = await Bus.connect(nats.url, name="bench")
            await bus.provision()
            await _backlog(bus)
            best: dict[str, float] = {}
            for round_ in range(ROUNDS):
                for reader in ("batch_pull", "faststream", "faststream_batch"):
                    seconds = await _run(bus, reader, f"bench-{reader}-{round_}")
                    rate = MESSAGES / seconds
                    print(f"round {round_} {reader}: {rate:,.0f} msg/s")
                    best[reader] = max(best.get(reader, 0.0), rate)
            await bus.close()
        finally:
            nats.stop()
    result: dict[str, float] = {
        "subscriber_messages": MESSAGES,
        "batch_pull_msgs_per_s": round(best["batch_pull"]),
        "faststream_msgs_per_s": round(best["faststream"]),
        "faststream_batch_msgs_per_s": round(best["faststream_batch"]),
        "subscriber_ratio": round(best["faststream"] / best["batch_pull"], 3),
        "subscriber_batch_ratio": round(best["faststream_batch"] / best["batch_pull"], 3),
    }
    # Last, one line of key=value results (bench/report.py).
    print(" ".join(f"{k}={v:g}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    asyncio.run(main())
