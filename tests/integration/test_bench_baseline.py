"""The replay benchmarks' baseline reads exactly what a projection would, and ends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from nats.js.api import StreamConfig
from tests.support.scripts import load_script

from switchboard.runtime.bus import Bus

fair = load_script("bench/fair_baseline.py", "bench_fair_baseline")


async def test_readers_run_at_once_and_end_even_when_the_tail_does_not_match(bus: Bus) -> None:
    tag = uuid.uuid4().hex[:8]
    stream, root = f"BT{tag}", f"bt{tag}"
    await bus.js.add_stream(StreamConfig(name=stream, subjects=[f"{root}.>"]))
    # 25 "a" then 40 "b": a reader of "a" must stop although the stream's tail is all "b"
    for i in range(25):
        await bus.js.publish(f"{root}.a.{i}", b"x")
    for i in range(40):
        await bus.js.publish(f"{root}.b.{i}", b"x")
    empty = f"BE{tag}"
    await bus.js.add_stream(StreamConfig(name=empty, subjects=[f"be{tag}.>"]))
    readers = [
        fair.Reader(stream, (f"{root}.a.>",)),
        fair.Reader(stream, (f"{root}.>",)),
        fair.Reader(empty, (f"be{tag}.>",)),  # like analytics' MTPROTO in the benchmark
        fair.Reader(stream, (f"{root}.none.>",)),  # a filter that matches nothing
    ]
    total, rate = await fair.bus_only_rate(bus, readers, 10)
    assert total == 25 + 65
    assert rate > 0
    # the readers' consumers are gone afterwards (ephemeral, deleted on close)
    assert [c async for c in _consumers(bus, stream)] == []


async def _consumers(bus: Bus, stream: str) -> AsyncIterator[str]:
    for info in await bus.js.consumers_info(stream):
        yield info.name
