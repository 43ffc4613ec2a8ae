"""Background rounds until a stop event: one loop for the work a service repeats on a period
(ticks, probes), so every such loop survives a failed round and stops at once the same way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from switchboard.runtime.logging import get_logger

log = get_logger(__name__)


async def pause(event: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``, or less when ``event`` (a stop, a wake-up) is set meanwhile; True
    once it is set. The one bounded wait on an event: every loop that sleeps until its next
    round or an earlier signal calls it."""
    # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


async def every(
    seconds: float, stop: asyncio.Event, work: Callable[[], Awaitable[object]], failed: str
) -> None:
    """Run ``work`` now and then every ``seconds`` until ``stop``. A round that raises is
    logged (``failed`` is the message) and the next one runs on time: one bad round (the bus
    away a moment) must not end the loop."""
    while not stop.is_set():
        try:
            await work()
        except Exception:
            log.exception(failed)
        await pause(stop, seconds)
