"""Checks on recorded timestamps, and virtual time for tests of what computes times."""

from __future__ import annotations

import asyncio
import heapq
import itertools


def max_in_window(times: list[float], window: float) -> int:
    """The most timestamps that fall in any half-open window (t - window, t]."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


class VirtualTime:
    """Time shared by ``actors`` concurrent tasks that moves only when every one of them
    sleeps, to the earliest wake-up: what they compute from it (slots, spans) does not
    depend on how busy the machine is, while their I/O stays real. ``clock`` and ``sleep``
    go where a component takes its time from; an actor that is done calls ``leave``."""

    def __init__(self, start: float, actors: int) -> None:
        self.now = start
        self.actors = actors
        self._asleep: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._asleep, (self.now + seconds, next(self._count), woken))
        self._advance()
        await woken

    def leave(self) -> None:
        self.actors -= 1
        self._advance()

    def _advance(self) -> None:
        if not self._asleep or len(self._asleep) < self.actors:
            return
        self.now = max(self.now, self._asleep[0][0])
        while self._asleep and self._asleep[0][0] <= self.now:
            heapq.heappop(self._asleep)[2].set_result(None)
