"""Rate limits shared by every outbound instance, held in the ``ratelimit`` KV bucket.

GCRA (the generic cell rate algorithm): each limit key stores its "theoretical arrival
time" (TAT); a send at time T is allowed when T >= TAT - tolerance, and moves the TAT to
max(TAT, T) + interval. Writes are compare-and-swap on the key's revision, so instances
racing for the same bot or chat each get distinct slots.

An account's key (leased, below) also keeps the provider's sliding window itself
(``window.WindowLog``: when each recent send may have been counted), and a slot must also
be one the window admits. GCRA there only keeps the pace smooth (at the exact rate, with
``Limit.burst`` slots of catching up); the window decides, and the margin lives in it: once
its answer is logged a send is taken as counted up to the lateness the answer showed plus
half the margin (a late one is written at once, ``counted_late``, and moves only the slot a
window on); until then it holds its place in the window (``window.Counted.latest``). Every
answer, and every leased slot nothing left at (``note_unused``), reaches the log with the
instance's next lease of the key or a report ``report_within`` later.

Two operations serve the send path:
- ``lease`` takes a block of consecutive slots of an account's key (a bot, a number) in one
  compare-and-swap: an instance with many sends for a bot pays one KV round trip per block
  rather than per send, and the block is never more than ``horizon`` seconds ahead, so the
  budget stays shared (another instance finds the TAT moved and leases after it). A slot an
  instance does not use is reported unused, never handed out twice; leases reach less than a
  window ahead.
- ``claim`` takes one slot of a recipient's key (a chat, a pair) at a given time, or says
  when that recipient is ready; a busy chat never blocks the account's other chats. These
  keys are GCRA only, spaced with the margin, and a late send holds their next window back
  (``shift``).

The window travels in the key's value after a ``|``: an instance of a version before it
cannot read an account's key and leases nothing until it is replaced (it never oversends).

A provider's 429 ``retry_after`` is a pause key that every instance follows (``PauseView``
watches them, so the send path reads no pause from KV), and it also pushes the paused key's
TAT past the pause, so no lease hands out a slot inside it.

Written here rather than taken from a library because the libraries at hand (aiolimiter,
limits) keep state in process memory or Redis, and the platform's state lives in JetStream.
Slots are absolute times on the NATS server's clock (``runtime.servertime``, the ``clock`` the
service gives): instances never compare times on their own clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from prometheus_client import Counter

from switchboard.outbound.errors import OutboundServiceError
from switchboard.outbound.window import Pace, WindowLog, pick_slots
from switchboard.runtime.identity import keyed_hash
from switchboard.runtime.kvwatch import follow
from switchboard.runtime.logging import get_logger
from switchboard.runtime.lru import remember
from switchboard.runtime.tasks import cancel_and_wait

log = get_logger(__name__)
REPORTS = Counter(
    "switchboard_outbound_answer_reports_total",
    "Writes of answered sends that no lease of their key carried in time (report_within)",
)


class LimiterContentionError(OutboundServiceError, RuntimeError):
    """Too many instances raced for one key at once; the caller retries later."""


@dataclass(frozen=True)
class Limit:
    """``count`` sends per ``per`` seconds, with bursts of up to ``burst`` sends."""

    count: float
    per: float = 1.0
    burst: int = 1

    @property
    def interval(self) -> float:
        return self.per / self.count

    @property
    def tolerance(self) -> float:
        return self.interval * (self.burst - 1)

    @property
    def window_count(self) -> int:
        """Sends the provider's window holds (a fractional rate rounds down, at least 1)."""
        return max(1, math.floor(self.count + 1e-9))


@dataclass(frozen=True)
class LimitKey:
    """One shared limit: a name (e.g. ``telegram.shop.bot``) and its rate."""

    name: str
    limit: Limit


@dataclass(frozen=True)
class Lease:
    """Slots leased on a key (absolute times), or when to ask again if there were none."""

    slots: tuple[float, ...]
    retry_at: float


# KV keys allow only [-/_=.a-zA-Z0-9]; names carry chat ids (a WhatsApp chat id is a phone
# number) and '@usernames': keyed with the deployment's identity pepper, since an unkeyed hash
# of a phone number is as good as the number to anyone reading the bucket. The state lives an
# hour at most (the bucket's TTL), so keys that changed with this only restart their pace.


def kv_key(name: str) -> str:
    return "rl." + keyed_hash("ratelimit", name)


def pause_key(name: str) -> str:
    return "pause." + keyed_hash("pause", name)


@dataclass(frozen=True)
class _State:
    """A key's theoretical arrival time, and the holds on it: ``(at, until)`` says the first
    slot that would come at or after ``at`` must not come before ``until`` (the next window
    after a send the provider may have counted late; see ``SharedLimiter.shift``)."""

    tat: float = 0.0
    holds: tuple[tuple[float, float], ...] = ()
    window: WindowLog = field(default_factory=WindowLog)

    def apply(self, t: float, slack: float) -> tuple[float, tuple[tuple[float, float], ...]]:
        """The slot a candidate ``t`` becomes, and the holds still waiting after it. A hold
        meant for a slot at ``at`` reaches the candidate within ``slack`` of it (slot times
        are sums of floats)."""
        due = [until for at, until in self.holds if at <= t + slack]
        left = tuple(h for h in self.holds if h[0] > t + slack)
        return max([t, *due]), left

    def encode(self, now: float) -> bytes:
        """``tat`` or ``tat;at:until;...`` (holds that ended are dropped), then ``|`` and
        the window when there is one."""
        live = [f"{a!r}:{b!r}" for a, b in self.holds if b > now - 1.0]
        text = ";".join([repr(self.tat), *live])
        if self.window.sends:
            text += "|" + self.window.encode()
        return text.encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> _State:
        if not raw:
            return cls()
        gcra, _, window = raw.decode().partition("|")
        head, *rest = gcra.split(";")
        holds = []
        for part in rest:
            a, _, b = part.partition(":")
            holds.append((float(a), float(b)))
        return cls(float(head), tuple(sorted(holds)), WindowLog.decode(window))


@dataclass
class _Seen:
    state: _State
    revision: int


@dataclass
class SharedLimiter:
    """Reserves send slots across instances."""

    kv: KeyValue
    clock: Callable[[], float] = time.time
    # How ``wait`` waits for a slot or a retry, on ``clock``'s time (a test's virtual time).
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # The room left for what no answer shows of when the provider counted a send (clock
    # differences, a late count that came back early): `margin` as a fraction of a window,
    # `safety` in seconds. On an account's key it is the window log's allowance (``window``);
    # on a recipient's key it is added to every interval.
    safety: float = 0.0
    margin: float = 0.0
    pauses: PauseView | None = None
    # How long a send may stay unanswered (the call's timeout and its lateness): until its
    # answer is logged, a send may have been counted up to this long after its slot.
    unresolved: float = 30.0
    # How soon a noted answer is written when no lease of its key carries it first: well
    # within the window less the lease horizon, so the slot a window on from the send is
    # leased knowing its answer (an unanswered send holds a place in the window).
    report_within: float = 0.25
    # The last state and revision this instance saw per key: a write with it usually
    # succeeds without a read first. Only a hint: compare-and-swap decides.
    _seen: OrderedDict[str, _Seen] = field(default_factory=OrderedDict)
    # Late and answered sends of leased keys noted here and not yet written (``note_late``):
    # the next lease of the key carries them in its own write, or ``counted_late`` does.
    _late: dict[str, list[tuple[float, float, bool]]] = field(default_factory=dict)
    _reports: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def spacing(self, limit: Limit) -> float:
        """A claimed (recipient) key's interval: the rate's, plus the margin."""
        return limit.interval * (1 + self.margin) + self.safety

    def allowance(self, limit: Limit) -> float:
        """How long after its slot a leased key's send is taken as counted, unless its answer
        showed it may have been later (``window``): the margin of a window."""
        return limit.per * self.margin + self.safety

    def pace(self, limit: Limit) -> Pace:
        """A leased key's window and pace."""
        return Pace(
            limit.window_count,
            limit.per,
            self.allowance(limit),
            limit.interval,
            limit.tolerance,
            gap=limit.interval / limit.burst,
            unresolved=self.unresolved,
        )

    # -- KV plumbing ---------------------------------------------------------------------

    async def _read(self, key: str) -> tuple[_State, int]:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return _State(), 0
        state = _State.decode(entry.value)
        self._remember(key, state, entry.revision or 0)
        return state, entry.revision or 0

    def _remember(self, key: str, state: _State, revision: int) -> None:
        remember(self._seen, key, _Seen(state, revision), 50_000)

    def _guess(self, key: str) -> tuple[_State, int] | None:
        seen = self._seen.get(key)
        return None if seen is None else (seen.state, seen.revision)

    async def _write(self, key: str, state: _State, revision: int) -> bool:
        """Compare-and-swap: store ``state`` if the key is still at ``revision`` (0: absent)."""
        try:
            new = await self.kv.update(key, state.encode(self.clock()), last=revision)
        except KeyWrongLastSequenceError:
            self._seen.pop(key, None)
            return False
        self._remember(key, state, new)
        return True

    async def _current(self, key: str) -> tuple[_State, int]:
        """The cached view of a key when there is one, else a read."""
        guess = self._guess(key)
        return guess if guess is not None else await self._read(key)

    # -- the send path -------------------------------------------------------------------

    async def lease(
        self, key: LimitKey, want: int, horizon: float | None = None, not_before: float = 0.0
    ) -> Lease:
        """Up to ``want`` slots on ``key``, none later than now + ``horizon`` (no bound when
        None) nor earlier than ``not_before``: each at the exact rate's pace (GCRA with the
        limit's burst) and admitted by the provider's window as logged (``window``)."""
        pace = self.pace(key.limit)
        name = kv_key(key.name)
        # Less than a window ahead: a send unanswered now is taken as counted as late as now,
        # which covers every slot up to a window on (``window``'s proof).
        reach = min(math.inf if horizon is None else horizon, pace.per * 0.99)
        for attempt in range(40):
            now = self.clock()
            cached = self._guess(name) if attempt == 0 else None
            state, revision = cached if cached is not None else await self._read(name)
            last = now + reach + 1e-9
            late = list(self._late.get(name, ()))
            window = state.window
            for slot, seconds, answered in late:
                window = window.late(slot, seconds, answered)
            window = window.trim(pace.count, pace.per, pace.allowance, now, pace.unresolved)
            earliest = max(now, not_before)
            slots, tat, window, first = pick_slots(
                pace, state.tat, window, want, earliest, last, now
            )
            if not slots:
                if cached is not None:
                    continue  # the cache may be old (answers written since): read first
                return Lease((), first - reach)
            if await self._write(name, replace(state, tat=tat, window=window), revision):
                self._written(name, late)
                return Lease(tuple(slots), tat)
            # another instance moved it: the next attempt reads it again
        raise LimiterContentionError(f"could not lease slots of {key.name}")

    def note_late(self, key: LimitKey, slot: float, seconds: float, answered: bool = False) -> None:
        """The send of ``key``'s leased ``slot`` may have been counted ``seconds`` after it
        (``answered``: its answer says so, and no later). The next lease of the key here
        carries it in its own write, or a report writes it ``report_within`` later (until
        then the window holds the send's place); a late one must reach the window before
        anyone leases a window on from it, so the caller also asks ``counted_late`` for it."""
        name = kv_key(key.name)
        self._late.setdefault(name, []).append((slot, seconds, answered))
        self._report_soon(key)

    def _report_soon(self, key: LimitKey) -> None:
        """Make sure the answers noted for ``key`` are written soon (``_report``)."""
        name = kv_key(key.name)
        pending = self._late.get(name, [])
        # An answer matters until its send's call would have timed out and two windows more
        # (the log holds an unanswered send's place until then); older ones are dropped.
        stale = self.clock() - self.unresolved - 2 * key.limit.per
        pending[:] = [item for item in pending if item[0] > stale]
        if not pending:
            self._late.pop(name, None)
        elif name not in self._reports:
            task = asyncio.get_running_loop().create_task(self._report(key))
            self._reports[name] = task

    def note_unused(self, key: LimitKey, slots: Sequence[float]) -> None:
        """These leased slots of ``key`` were never used: nothing left at them, which the
        log takes as answered on time (else each would hold a place in its window until
        the call timeout, ``window.Counted.latest``)."""
        for slot in slots:
            self.note_late(key, slot, 0.0, answered=True)

    async def _report(self, key: LimitKey) -> None:
        """Write ``key``'s noted answers ``report_within`` after the first of them, unless a
        lease carried them meanwhile (``counted_late`` then has nothing to do)."""
        try:
            await asyncio.sleep(self.report_within)
            if self._late.get(kv_key(key.name)):  # else a lease carried them
                REPORTS.inc()
                await self.counted_late(key)
        except Exception as exc:  # the bus is down: the next lease or report carries them
            log.warning("writing answered sends failed", key=key.name, error=str(exc))
        finally:
            self._reports.pop(kv_key(key.name), None)
        self._report_soon(key)  # the ones noted while writing, or left by a failure

    async def close(self) -> None:
        """Stop the pending reports (what they would write only saves the next leases
        time: an unanswered send is taken as counted until its call's timeout)."""
        tasks = list(self._reports.values())
        self._reports.clear()
        await cancel_and_wait(tasks)

    def _written(self, name: str, done: Sequence[tuple[float, float, bool]]) -> None:
        """These noted late sends of ``name`` are in the KV value now (a lease and a write
        may carry the same ones: each leaves once)."""
        pending = self._late.get(name)
        if pending is None:
            return
        for item in done:
            with contextlib.suppress(ValueError):
                pending.remove(item)
        if not pending:
            del self._late[name]

    async def counted_late(self, key: LimitKey) -> None:
        """Write the late sends noted for ``key`` (``note_late``) that no lease carried yet.
        The window logs them for every instance, so the slot a window on from each comes
        that much later (``window.WindowLog.late``); leases reach less than a window ahead,
        so that slot is still free."""
        pace = self.pace(key.limit)
        name = kv_key(key.name)
        for attempt in range(40):
            late = list(self._late.get(name, ()))
            if not late:
                return  # a lease carried them meanwhile
            # The cached view first: it saves a round trip when this instance leased last.
            cached = self._guess(name) if attempt == 0 else None
            state, revision = cached if cached is not None else await self._read(name)
            window = state.window
            for slot, seconds, answered in late:
                window = window.late(slot, seconds, answered)
            window = window.trim(
                pace.count, pace.per, pace.allowance, self.clock(), pace.unresolved
            )
            if window == state.window and cached is None:
                self._written(name, late)
                return
            if window != state.window and await self._write(
                name, replace(state, window=window), revision
            ):
                self._written(name, late)
                return
        raise LimiterContentionError(f"could not note late sends of {key.name}")

    async def claim(self, key: LimitKey, at: float) -> float | None:
        """Take ``key``'s slot at ``at``: None when taken, else the time it is ready."""
        name = kv_key(key.name)
        step = self.spacing(key.limit)
        cached = self._guess(name)
        if cached is None and await self._write(name, _State(at + step), 0):
            return None  # a recipient nobody wrote to lately: one round trip
        for attempt in range(20):
            cached = self._guess(name) if attempt == 0 else None
            state, revision = cached if cached is not None else await self._read(name)
            ready, rest = state.apply(max(at, state.tat - key.limit.tolerance), step / 2)
            if ready > at + 1e-9:
                if cached is not None:
                    continue  # the cache may be old: read before saying busy
                return ready
            if await self._write(name, _State(max(state.tat, at) + step, rest), revision):
                return None
        raise LimiterContentionError(f"could not claim {key.name}")

    async def shift(self, key: LimitKey, late: Sequence[tuple[float, float]]) -> None:
        """Sends of these slots may have been counted this many seconds later than their
        slots: ``(slot, seconds)``. The slot ``count`` positions on from each (the first of
        its next window) must come that much later, for every instance. Leases reach less
        than a window ahead, so those slots are still free; the holds wait beside the TAT,
        and the next lease or claim that reaches one applies it (each slot applies the
        holds it reaches, so late sends in a row do not add up)."""
        step = self.spacing(key.limit)
        new = [(slot + key.limit.count * step, slot + key.limit.count * step + by)
               for slot, by in late]  # fmt: skip
        name = kv_key(key.name)
        for _ in range(20):
            state, revision = await self._read(name)  # busy keys: a cached view is stale
            holds = tuple(sorted([*state.holds, *new]))
            if await self._write(name, replace(state, holds=holds), revision):
                return

    async def pause(self, name: str, seconds: float, key: LimitKey | None = None) -> float:
        """Pause ``name`` (a bot, a chat) for every instance until now + seconds, and push
        ``key``'s TAT there so no slot is leased inside the pause. Returns the pause end."""
        until = self.clock() + seconds
        pk = pause_key(name)
        for _ in range(20):
            current, revision = await self._read(pk)
            if current.tat >= until or await self._write(pk, _State(until), revision):
                break
        if self.pauses is not None:
            self.pauses.note(pk, until)
        if key is not None:
            name_key = kv_key(key.name)
            for _ in range(20):
                state, revision = await self._read(name_key)
                # GCRA lets a slot come `tolerance` before the TAT: none inside the pause
                floor = until + key.limit.tolerance
                later = replace(state, tat=floor)
                if state.tat >= floor or await self._write(name_key, later, revision):
                    break
        return until

    async def paused_until(self, name: str) -> float:
        """When ``name``'s pause ends (0 if none): the watched view, else a read."""
        if self.pauses is not None and self.pauses.ready:
            return self.pauses.until(pause_key(name))
        return (await self._read(pause_key(name)))[0].tat

    # -- one slot at a time (conversions, address books, tests) ---------------------------

    async def reserve(
        self, primary: LimitKey, secondary: Sequence[LimitKey] = (), pauses: Sequence[str] = ()
    ) -> tuple[float | None, float]:
        """One common slot on all keys: (slot time, slot time) or (None, retry at).

        Only the ``primary`` key queues reservations into the future. A ``secondary`` key
        (a chat) that is not ready reserves nothing: moving the bot's TAT to a busy chat's
        next slot would block every other chat until then.
        """
        now = self.clock()
        paused = [await self.paused_until(p) for p in pauses]
        ready = max([now, *paused])
        for k in secondary:
            state, _ = await self._read(kv_key(k.name))
            candidate = max(now, state.tat - k.limit.tolerance)
            ready = max(ready, state.apply(candidate, self.spacing(k.limit) / 2)[0])
        if ready > now:
            return None, ready
        lease = await self.lease(primary, 1)
        if not lease.slots:  # none within a window from now
            return None, lease.retry_at
        at = lease.slots[0]
        for k in secondary:
            busy = await self.claim(k, at)
            if busy is not None:
                self.note_unused(primary, [at])  # the chat was taken meanwhile: unused
                return None, busy
        return at, at

    async def wait(
        self, primary: LimitKey, secondary: Sequence[LimitKey] = (), pauses: Sequence[str] = ()
    ) -> float:
        """Reserve, waiting for recipients and pauses as needed; sleep until the slot, and
        return it. The caller says when its call ended (``ended``)."""
        while True:
            at, retry = await self.reserve(primary, secondary, pauses)
            if at is not None:
                break
            await self.sleep(max(0.0, retry - self.clock()))
        delay = at - self.clock()
        if delay > 0:
            await self.sleep(delay)
        return at

    def ended(self, key: LimitKey, slot: float, heard: bool = True) -> None:
        """The call made at ``slot`` of ``key`` (``wait``) ended now: the provider counted
        it no later than now when ``heard`` (an answer came back), else it may until the
        call's timeout. No round trip is measured here, so all of its time counts as late."""
        self.note_late(key, slot, max(0.0, self.clock() - slot), heard)


@dataclass
class PauseView:
    """The pause keys of the ``ratelimit`` bucket, followed by a KV watch: the send path asks
    it before every call without a round trip, and sees a pause another instance wrote within
    a millisecond or so of the write."""

    kv: KeyValue
    clock: Callable[[], float] = time.time
    _loaded: asyncio.Event = field(default_factory=asyncio.Event)
    _until: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def until(self, key: str) -> float:
        return self._until.get(key, 0.0)

    def note(self, key: str, until: float) -> None:
        if until > self._until.get(key, 0.0):
            self._until[key] = until
            self.changed.set()

    @property
    def ready(self) -> bool:
        """Whether every pause stored so far is known here (the watch is following)."""
        return self._loaded.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            idle = self._forget_expired
            await follow(self.kv, self._apply, self._loaded, stop, keys="pause.>", idle=idle)
        finally:
            self._loaded.clear()

    def _apply(self, entry: KeyValue.Entry) -> None:
        if entry.value and entry.operation not in ("DEL", "PURGE"):
            with contextlib.suppress(ValueError):
                self.note(entry.key, float(entry.value.decode()))

    def _forget_expired(self) -> None:
        now = self.clock()
        for key in [k for k, v in self._until.items() if v < now - 60]:
            del self._until[key]
