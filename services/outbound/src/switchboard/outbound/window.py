"""The provider's sliding window as the limiter sees it: the latest time each recent send of
a key may have been counted.

Telegram (and the sandbox, PROTOCOLS.md) refuses a send when ``count`` sends were counted in
the ``per`` seconds before it. A send is counted no earlier than its slot (it never leaves
before it). Once its answer is logged, no later than its slot plus the lateness the answer
showed (``pacing``) plus half the allowance (what no answer shows: clocks, the estimate's
error). Until then nothing bounds it but the call's timeout: a send still unanswered in the
log when a slot is leased is taken as counted as late as that moment (``Counted.latest``'s
``now``), at least its allowance after its slot. So a new slot ``t`` is safe when at most
``count - 1`` of the latest-count times are later than ``t - per``: the ``count``-th latest
of them plus ``per`` is the earliest slot the window admits (``WindowLog.earliest``). A late
send moves only the slot that follows it by a window; the sends around it keep their pace
(holds that shifted every later slot cost each window its latest send's lateness again).
Every answer, and every leased slot that never left, reaches the log within a fraction of a
window (``SharedLimiter.note_late``), so in the usual course a send is answered in the log
long before the slot a window on from it is leased and the rule costs nothing; it holds a
window's place only for a send whose answer is slow to come or to be written (a starved or
killed instance), which before was taken as counted within its allowance and drew 429s
(bench_outbound under load: reports written a median 0.3 s, up to 2.3 s, after the answer).

Proof sketch that no ``count + 1`` sends can be counted inside one window: of any such
group, the send whose slot ``t`` was taken last (at ``T >= t - horizon``, and leases reach
less than a window ahead: ``horizon < per``) saw the other ``count`` already logged. Each
was counted after ``t - per`` (inside the window with the last one, which was counted no
earlier than ``t``), and each has a latest-counted time after ``t - per``: an answered one
its measured one, an unanswered one ``T > t - per``. So ``t`` was at least a window after
the ``count``-th latest of them: outside the window. It holds for any order of slots and any
number of instances, since the log is one KV value written by compare-and-swap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Slots of one key are told apart by time, on a grid of whole microseconds (``on_grid``).
_SAME_SLOT = 2e-6


def on_grid(t: float) -> float:
    """``t`` rounded up to a whole microsecond, the grid every slot of a log is on. The
    encoding carries slots as whole microseconds, so a slot read back is the very float
    that was leased, however often the log is written again: an encoding that rounded up at
    each write let a logged slot drift a microsecond per write, until a report of its send
    no longer found it and logged a second send that never was, which held the window back
    as if it had been made."""
    up = math.ceil(t * 1e6)
    return up / 1e6 if up / 1e6 >= t else (up + 1) / 1e6  # never earlier, even by a float


@dataclass(frozen=True)
class Counted:
    """One send: its slot, how late (seconds) it may have been counted, and whether that
    lateness is its answer's (``answered``) or only a lower bound seen before it (the send
    woke up late, its answer is not back)."""

    slot: float
    late: float = 0.0
    answered: bool = False

    def latest(
        self, allowance: float, now: float = -math.inf, unresolved: float = math.inf
    ) -> float:
        """The latest time the provider may have counted it: its slot plus its lateness and
        half the allowance once its answer is known. Before, at least the whole allowance,
        and up to ``now`` (the provider may count it any time until it answers), but no
        more than ``unresolved`` after its slot (a call that long is given up). An answered
        send on time thus frees the window a window on that much earlier: the whole
        allowance on every send capped a bot at 1 / (1 + margin) of its rate."""
        if self.answered:
            return self.slot + self.late + allowance / 2
        waited = min(now - self.slot, unresolved)
        return self.slot + max(allowance, self.late + allowance / 2, waited)


def noteworthy(late: float, allowance: float) -> bool:
    """Whether a send this late moves anything: the allowance absorbs up to half of itself."""
    return late > allowance / 2


@dataclass(frozen=True)
class WindowLog:
    """The sends of one key that can still matter, in slot order."""

    sends: tuple[Counted, ...] = ()

    def earliest(
        self,
        count: int,
        per: float,
        allowance: float,
        now: float = -math.inf,
        unresolved: float = math.inf,
    ) -> float:
        """The earliest slot the provider's window admits (``-inf``: any), leased at ``now``
        (``Counted.latest``)."""
        if len(self.sends) < count:
            return -math.inf
        latest = sorted(c.latest(allowance, now, unresolved) for c in self.sends)
        return latest[-count] + per

    def add(self, slot: float) -> WindowLog:
        return WindowLog((*self.sends, Counted(slot)))

    def late(self, slot: float, late: float, answered: bool = False) -> WindowLog:
        """The send of ``slot`` may have been counted ``late`` after it (``answered``: its
        answer says so). With several sends at one slot, the least late of those not yet
        answered takes it (lateness only grows: a report never lowers what an earlier one of
        the same send said); a send no longer logged (it could not matter then) comes back
        if it matters now."""
        same = [i for i, c in enumerate(self.sends) if abs(c.slot - slot) <= _SAME_SLOT]
        if not same:
            sends = sorted((*self.sends, Counted(slot, late, answered)), key=lambda c: c.slot)
            return WindowLog(tuple(sends))
        open_ = [i for i in same if not self.sends[i].answered] or same
        i = min(open_, key=lambda j: self.sends[j].late)
        old = self.sends[i]
        new = Counted(old.slot, max(old.late, late), old.answered or answered)
        if new == old:
            return self
        sends = list(self.sends)
        sends[i] = new
        return WindowLog(tuple(sends))

    def trim(
        self, count: int, per: float, allowance: float, now: float, unresolved: float = math.inf
    ) -> WindowLog:
        """Only what can still count: only the ``count`` latest decide ``earliest``, and a
        send counted two windows before ``now`` is out of every window to come (one would
        do, but an instance that read the clock before a slow read of the key may still pick
        a slot a little before this ``now``)."""

        def latest(c: Counted) -> float:
            return c.latest(allowance, now, unresolved)

        live = [c for c in self.sends if latest(c) > now - 2 * per]
        if len(live) > count:
            keep = sorted(live, key=latest)[-count:]
            live = sorted(keep, key=lambda c: c.slot)
        return self if len(live) == len(self.sends) else WindowLog(tuple(live))

    def encode(self) -> str:
        """``base,offset[:late|=late],...`` with slots on the microsecond grid (``on_grid``)
        and lateness in whole microseconds rounded up (once: a decoded lateness encodes to
        itself), so a decoded latest time is never earlier than the true one; ``=`` marks an
        answered send (an instance of a version before it cannot read the key and leases
        nothing until it is replaced: it never oversends)."""
        if not self.sends:
            return ""
        base = _micros(self.sends[0].slot)
        parts = [repr(base / 1e6)]
        for c in self.sends:
            off = _micros(c.slot) - base
            late = math.ceil(c.late * 1e6 - 1e-3)
            if c.answered:
                parts.append(f"{off}={late}")
            else:
                parts.append(f"{off}:{late}" if c.late > 0 else str(off))
        return ",".join(parts)

    @classmethod
    def decode(cls, text: str) -> WindowLog:
        if not text:
            return cls()
        head, *rest = text.split(",")
        base = _micros(float(head))
        sends = []
        for part in rest:
            answered = "=" in part
            off, _, late = part.partition("=" if answered else ":")
            seconds = int(late) / 1e6 if late else 0.0
            sends.append(Counted((base + int(off)) / 1e6, seconds, answered))
        return cls(tuple(sends))


def _micros(t: float) -> int:
    """A time on the grid in whole microseconds (exact: float error is below half of one)."""
    return round(t * 1e6)


@dataclass(frozen=True)
class Pace:
    """A leased key's rules: its window (``count`` per ``per``, each send taken as counted
    up to ``allowance`` after its slot) and its GCRA pace (``interval``, ``tolerance``),
    with slots never closer than ``gap``: a pace that catches up still spreads its sends,
    so a pause a provider answers reaches every instance before the next one leaves."""

    count: int
    per: float
    allowance: float
    interval: float
    tolerance: float
    gap: float = 0.0
    # How long a send may stay unanswered (its call's timeout): until its answer is logged
    # it may have been counted up to that long after its slot (``Counted.latest``).
    unresolved: float = math.inf


def pick_slots(
    pace: Pace,
    tat: float,
    window: WindowLog,
    want: int,
    earliest: float,
    last: float,
    now: float,
) -> tuple[list[float], float, WindowLog, float]:
    """Up to ``want`` slots from ``earliest`` to ``last``, each admitted by the window (as
    it stands ``now``) and the pace: (slots, the TAT and window after them, the first slot
    that did not fit). ``last`` must be less than a window after ``now`` (the proof above)."""
    slots: list[float] = []
    latest = max((c.slot for c in window.sends), default=-math.inf)
    while len(slots) < want:
        opens = window.earliest(pace.count, pace.per, pace.allowance, now, pace.unresolved)
        t = on_grid(max(earliest, tat - pace.tolerance, opens, latest + pace.gap))
        if t > last:
            return slots, tat, window, t
        slots.append(t)
        window = window.add(t)
        tat = max(tat, t) + pace.interval
        latest = max(latest, t)
    return slots, tat, window, math.inf
