"""How late a send may have reached the provider, and how far that pushes the schedule.

A provider counts a request when it handles it: somewhere between the moment the request
left (``SendWindow.left_at``) and the moment the answer came back. The usual part of that
round trip (the fastest of the account's round trips) delays every send alike and brings
none closer to another; what goes beyond it, plus any delay in leaving after
the slot, may have brought this send closer to the sends of the next window than the slots
were. The limiter's margin leaves room for it: half of it absorbs such delays unnoticed; a
send later than that is written down for every instance at once, and every answer rides on
the instance's next lease (an answered send is counted from its own lateness). On the
account's key the window log takes it (``SharedLimiter.counted_late``): the slot a window
after this send's moves, and only that one. On a recipient's key the next window's slots
start that much later (``SharedLimiter.shift``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from prometheus_client import Counter

from switchboard.outbound.limits import SendLimits
from switchboard.outbound.ratelimit import LimitKey, SharedLimiter
from switchboard.outbound.window import noteworthy
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)
HELD = Counter(
    "switchboard_outbound_late_sends_total",
    "Sends the provider may have counted late enough to hold the next window back (pacing)",
)


@dataclass
class RoundTrips:
    """The fastest round trip of each account's calls seen by this process.

    The fastest ever, not of the recent ones: under load every round trip of a few seconds
    was slow (the loop late to read answers), the baseline rose with them, and a send the
    provider counted late but answered quickly looked on time (bench_outbound at load 4:
    5 429s once answered sends were counted from their lateness). A baseline too low only
    overstates lateness."""

    fastest: dict[str, float] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    # Round trips an account needs before its fastest is trusted. The first ones of a
    # process are slow (connections open, the loop is busy starting): taken as the usual
    # round trip, a send the provider counted 17 ms late looked on time (bench_outbound
    # traces, the first sends of a run). Until then no part of a round trip is usual.
    warm: int = 8

    def baseline(self, account: str, rtt: float) -> float:
        """Note ``rtt`` and return the fastest round trip of ``account`` so far (0 until it
        has ``warm`` of them)."""
        best = min(self.fastest.get(account, rtt), rtt)
        self.fastest[account] = best
        seen = self.seen[account] = self.seen.get(account, 0) + 1
        return best if seen >= self.warm else 0.0


def lateness(slot: float, left_at: float, answered_at: float, baseline: float) -> float:
    """The latest the provider may have counted the send, after its slot."""
    return max(0.0, left_at - slot) + max(0.0, answered_at - left_at - baseline)


def push(key: LimitKey, late: float, margin: float) -> float:
    """How far ``key``'s free slots must move for a send ``late`` after its slot (0: none).
    Never more than a window: past that the next window is clear whatever happened."""
    room = max(0.002, key.limit.per * margin / 2)
    return min(key.limit.per, late - room) if late > room else 0.0


@dataclass
class Holds:
    """Writes down late sends, one write per key at a time, merging the ones that come up
    meanwhile (under load many sends are late together, and a write per send would add load
    where it hurts)."""

    limiter: SharedLimiter
    pending: dict[str, tuple[LimitKey, bool, list[tuple[float, float]]]] = field(
        default_factory=dict
    )
    writing: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def note(
        self,
        limits: SendLimits,
        at: float,
        late: float,
        covered: float = 0.0,
        *,
        answered: bool = False,
    ) -> float:
        """A send of ``at`` may have been counted ``late`` after it (unless ``covered`` was
        already noted; ``answered``: its answer is back, so it was counted no later).
        Returns the lateness now covered. Every answer rides on this instance's next lease
        of the account (an on-time one lets the window a window on open earlier); a late
        one is also written at once."""
        account = limits.account
        grew = late > covered
        late_enough = grew and noteworthy(late, self.limiter.allowance(account.limit))
        if answered or late_enough:
            self.limiter.note_late(account, at, max(late, covered), answered)
        if late_enough:
            self._queue(account, True, (at, late))
        recipient = limits.recipient
        if (
            grew
            and recipient is not None
            and (by := push(recipient, late, self.limiter.margin)) > 0
        ):
            self._queue(recipient, False, (at, by))
        return max(late, covered)

    def _queue(self, key: LimitKey, windowed: bool, item: tuple[float, float]) -> None:
        HELD.inc()
        self.pending.setdefault(key.name, (key, windowed, []))[2].append(item)
        if key.name not in self.writing:
            task = asyncio.get_running_loop().create_task(self._write(key.name))
            self.writing[key.name] = task

    async def _write(self, name: str) -> None:
        try:
            while (found := self.pending.pop(name, None)) is not None:
                key, windowed, late = found
                try:
                    if windowed:
                        await self.limiter.counted_late(key)  # unless a lease carried them
                    else:
                        await self.limiter.shift(key, late)
                except Exception as exc:  # the bus is down: nothing can be sent either
                    log.warning("holding later slots back failed", key=name, error=str(exc))
        finally:
            self.writing.pop(name, None)
