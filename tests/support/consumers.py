"""The consumer port, as the contract suite (tests/integration/test_consumers.py) runs it:
one durable :class:`~switchboard.runtime.subscribers.Subscription`, one handler, served
until a stop by either reader a subscription may declare."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from switchboard.runtime import subscribers
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import Handler, PullWorker
from switchboard.runtime.subscribers import Reader, Subscription

# The readers that serve a durable to one handler: FastStream's pull subscriber (the
# default) and the runtime's PullWorker on BatchPull (a hot path's, e.g. the normalizer).
# ``continuous_pull`` is an outbound lane, tested with the lanes.
READERS: tuple[Reader, ...] = ("faststream", "batch_pull")


def consume(
    bus: Bus, reader: Reader, sub: Subscription, handler: Handler, stop: asyncio.Event
) -> Coroutine[Any, Any, None]:
    """Serve ``sub`` to ``handler`` through ``reader`` until ``stop`` is set (the
    coroutine returns once the work in flight is done), as a service runs it."""
    if reader == "batch_pull":
        worker = PullWorker(bus, sub.spec, handler, stop=stop, concurrency=sub.concurrency)
        return worker.run()
    if reader == "faststream":
        return subscribers.serve(bus, {sub: handler}, stop)
    raise ValueError(f"no consumer port reader {reader!r}")


class Served:
    """A subscription being served in the background until :meth:`close`."""

    def __init__(self, bus: Bus, reader: Reader, sub: Subscription, handler: Handler) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(consume(bus, reader, sub, handler, self.stop))

    async def close(self) -> None:
        """Stop taking messages and wait for the work in flight."""
        self.stop.set()
        await self.task
