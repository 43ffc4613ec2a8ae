"""The replay benchmarks' baseline: the cost of the bus alone, read the way production reads.

Each reader is the projection's own puller (`switchboard.runtime.delivery.pull.BatchPull`, the
same ack-less, memory-stored ephemeral consumer with the same filter and batch size as
`Projection._subscribe`), with an apply that does nothing. All readers of a rebuild run at
the same time, as the rebuild's projections do, so the ratio compares like with like: what
the replay costs on top of reading the same events the same way.

``replay_against_baseline`` is the procedure the CRM and analytics benchmarks share: load the
traffic, measure the baseline before and after the service's replay, print the baseline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.events import Message
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import BatchPull, stream_seq
from switchboard.runtime.embedded import EmbeddedNats, EmbeddedPostgres


@dataclass(frozen=True)
class Reader:
    """One projection's read: its stream and filter subjects."""

    stream: str
    subjects: tuple[str, ...]


def readers_of(modules: Sequence[object]) -> list[Reader]:
    """The readers of projector modules (each has STREAM and SUBJECTS)."""
    return [Reader(m.STREAM, tuple(m.SUBJECTS)) for m in modules]  # type: ignore[attr-defined]


async def _read_all(bus: Bus, reader: Reader, batch: int) -> int:
    """Read every message of the reader's stream up to its last sequence; do nothing with it."""
    last = (await bus.js.stream_info(reader.stream)).state.last_seq
    if last == 0:
        return 0
    config = ConsumerConfig(  # as Projection._subscribe from the start of the stream
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=1,
        filter_subjects=list(reader.subjects),
        inactive_threshold=30.0,
        mem_storage=True,
        num_replicas=1,
    )
    puller = await BatchPull(bus, reader.stream, config).start()
    got, position = 0, 0

    async def drained() -> bool:
        # Behind the stream's end with nothing more to read: the rest does not match.
        info = await bus.js.consumer_info(reader.stream, puller.name)
        return info.num_pending == 0 and not puller.buffer

    try:
        while position < last:
            try:
                msgs = await puller.fetch(batch, timeout=0.5)
            except TimeoutError:
                if await drained():
                    break
                continue
            got += len(msgs)
            position = stream_seq(msgs[-1])
            if len(msgs) < batch and position < last and await drained():
                break
    finally:
        await puller.close()
    return got


async def bus_only_rate(bus: Bus, readers: Sequence[Reader], batch: int) -> tuple[int, float]:
    """Events read and events/s with every reader running at once."""
    start = time.perf_counter()
    counts = await asyncio.gather(*(_read_all(bus, r, batch) for r in readers))
    elapsed = time.perf_counter() - start
    total = sum(counts)
    return total, total / elapsed if elapsed > 0 else float("nan")


@dataclass(frozen=True)
class Replayed:
    """A replay's events/s, the bus-only baseline's (the mean of its two runs) and how many
    readers the baseline ran at once."""

    rate: float
    base: float
    readers: int


async def replay_against_baseline(
    tmp: Path,
    events: list[tuple[Message, datetime]],
    modules: Sequence[object],
    batch_of: Callable[[str, str], int],
    replay: Callable[[str, str, int], Awaitable[float]],
    load: Callable[[Bus, list[tuple[Message, datetime]]], Awaitable[None]],
) -> Replayed:
    """On NATS and Postgres started under ``tmp``: ``load`` the ``events``, then time
    ``replay(nats_url, postgres_url, total)`` between two baseline runs of the projector
    ``modules``' readers with the rebuild's batch (``batch_of(nats_url, postgres_url)``).
    The baseline counts as the mean of the runs before and after: the machine is shared, and
    a load that comes or goes between the two would otherwise tilt the ratio either way."""
    nats = EmbeddedNats(tmp / "nats").start()
    pg = EmbeddedPostgres(tmp / "pg").start()
    try:
        bus = await Bus.connect(nats.url, name="bench")
        await bus.provision()
        total = len(events)
        t = time.perf_counter()
        await load(bus, events)
        print(f"loaded {total:,} events (CONV, DELIVERY, CRM) in {time.perf_counter() - t:.1f} s")
        del events  # models the replay process would not hold (the GC would rescan them)
        readers = readers_of(modules)
        batch = batch_of(nats.url, pg.url)
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
        return Replayed(rate, base, len(readers))
    finally:
        pg.stop()
        nats.stop()
