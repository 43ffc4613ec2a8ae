"""Hands out send slots per account in this instance, by priority.

Every send waiting in this instance for one account (a bot) holds a ``Ticket``. The
account's scheduler leases blocks of the account's slots from the shared limiter (one KV
round trip per block, not per send), then gives each slot to the most urgent ticket whose
recipient can take it at that time (a compare-and-swap on the recipient's key). Lanes:

- high and normal sends lease up to ``horizons[priority]`` ahead, and are served first;
- bulk sends lease only while the account's next free slot is less than the bulk horizon
  away, so at any moment all instances together hold at most that much of an account's
  future for bulk traffic: a conversational send arriving anywhere finds a slot that soon.

Slots are absolute times shared by every instance; the scheduler holds no state that
matters (a crash loses at most the slots it leased: the window holds their places until
a call's timeout, as for any send whose answer never came). Slots no ticket took are
reported unused.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard.events.catalog.outbound import Priority
from switchboard.outbound.ratelimit import (
    LimiterContentionError,
    LimitKey,
    PauseView,
    SharedLimiter,
    kv_key,
    pause_key,
)
from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import pause
from switchboard.runtime.tasks import cancel_and_wait

log = get_logger(__name__)

RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.BULK: 2}
_ORDER = itertools.count()


@dataclass(eq=False)
class Ticket:
    """One send waiting for a slot of its account."""

    priority: Priority
    recipient: LimitKey | None
    recipient_pause: str
    ready_at: float = 0.0
    seq: int = field(default_factory=lambda: next(_ORDER))
    future: asyncio.Future[float] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def rank(self) -> tuple[int, int]:
        return RANK[self.priority], self.seq


@dataclass
class Horizons:
    """How far ahead (seconds) each priority may lease an account's slots."""

    # Less than a window (1 s for a bot) minus the lateness allowed: a late send pushes the
    # slots that are still free, and those must include the next window's.
    high: float = 0.5
    normal: float = 0.5
    bulk: float = 0.25

    def of(self, priority: Priority) -> float:
        return {Priority.HIGH: self.high, Priority.NORMAL: self.normal}.get(priority, self.bulk)


@dataclass
class AccountScheduler:
    """The slots of one account in this instance."""

    limiter: SharedLimiter
    key: LimitKey
    account_pause: str
    horizons: Horizons
    clock: Callable[[], float] = time.time
    tickets: list[Ticket] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def slot(self, ticket: Ticket) -> asyncio.Future[float]:
        """The future slot time of ``ticket`` (cancel the future to withdraw it)."""
        guess = self.limiter._guess(kv_key(ticket.recipient.name)) if ticket.recipient else None
        if guess is not None and ticket.recipient is not None:
            # What this instance last saw of the chat: no lease for a chat that is busy.
            ticket.ready_at = max(ticket.ready_at, guess[0].tat - ticket.recipient.limit.tolerance)
        self.tickets.append(ticket)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.key.name)
        return ticket.future

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    def _paused(self, name: str) -> float:
        view: PauseView | None = self.limiter.pauses
        return view.until(pause_key(name)) if view is not None else 0.0

    async def _run(self) -> None:
        while True:
            self.tickets = [t for t in self.tickets if not t.future.done()]
            if not self.tickets:
                return
            self._wake.clear()
            try:
                delay = await self._serve()
            except LimiterContentionError as exc:
                log.warning("limiter contention", key=self.key.name, error=str(exc))
                delay = 0.05
            except Exception as exc:  # the bus is down: the tickets wait, nothing is lost
                log.warning("slot lease failed", key=self.key.name, error=str(exc))
                delay = 0.5
            if delay > 0:
                await pause(self._wake, delay)

    async def _serve(self) -> float:
        """Lease and hand out one block; returns how long to wait before the next."""
        now = self.clock()
        paused = self._paused(self.account_pause)
        for t in self.tickets:
            t.ready_at = max(t.ready_at, self._paused(t.recipient_pause))
        best = min(self.tickets, key=lambda t: t.rank)
        horizon = self.horizons.of(best.priority)
        start = max(now, paused)
        due = sorted(
            (t for t in self.tickets if t.ready_at <= start + horizon), key=lambda t: t.rank
        )
        if not due:
            return max(0.001, min(t.ready_at for t in self.tickets) - horizon - now)
        lease = await self.limiter.lease(self.key, len(due), horizon=horizon, not_before=paused)
        if not lease.slots:
            # The account's future is taken that far: ask when it has room again, or at
            # once if a more urgent ticket arrives (it may lease further ahead).
            return max(0.001, lease.retry_at + horizon / 2 - self.clock())
        given = await self._assign(list(lease.slots), due)
        # The slots no send took leave nothing: logged as such, they free their windows.
        self.limiter.note_unused(self.key, [t for t in lease.slots if t not in given])
        return (
            0.0
            if len(lease.slots) < len(due)
            else max(0.0, lease.slots[-1] - horizon / 2 - self.clock())
        )

    async def _assign(self, slots: list[float], due: list[Ticket]) -> set[float]:
        """Give the slots to the tickets in order; a recipient busy at its slot moves aside
        and the slot goes to the next ticket, while there is time. Returns the slots given."""
        waiting = list(due)
        given: set[float] = set()
        for _ in range(3):
            pairs: list[tuple[float, Ticket]] = []
            unused: list[float] = []
            for at in slots:
                pick = next((t for t in waiting if t.ready_at <= at + 1e-9), None)
                if pick is None:
                    unused.append(at)
                else:
                    waiting.remove(pick)
                    pairs.append((at, pick))
            if not pairs:
                return given
            results = await asyncio.gather(
                *(self._claim(t, at) for at, t in pairs), return_exceptions=True
            )
            for (at, ticket), busy in zip(pairs, results, strict=True):
                if isinstance(busy, BaseException):
                    log.warning("recipient claim failed", key=self.key.name, error=str(busy))
                    unused.append(at)
                elif busy is None:
                    if not ticket.future.done():
                        ticket.future.set_result(at)
                        given.add(at)
                    else:  # withdrawn after its recipient's slot was taken
                        unused.append(at)
                else:
                    ticket.ready_at = busy
                    unused.append(at)
            soon = self.clock() + 0.005
            slots = sorted(s for s in unused if s > soon)
            if not slots or not waiting:
                return given
        return given

    async def _claim(self, ticket: Ticket, at: float) -> float | None:
        if ticket.future.done():
            return at  # withdrawn: the slot goes to another ticket
        if ticket.recipient is None:
            return None
        return await self.limiter.claim(ticket.recipient, at)


@dataclass
class Schedulers:
    """One scheduler per account key in this instance."""

    limiter: SharedLimiter
    horizons: Horizons
    by_key: dict[str, AccountScheduler] = field(default_factory=dict)

    def get(self, key: LimitKey, account_pause: str) -> AccountScheduler:
        found = self.by_key.get(key.name)
        if found is None or found.key != key:
            found = AccountScheduler(
                self.limiter, key, account_pause, self.horizons, self.limiter.clock
            )
            self.by_key[key.name] = found
        return found

    async def close(self) -> None:
        for scheduler in self.by_key.values():
            await scheduler.close()
