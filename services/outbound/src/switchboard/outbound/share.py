"""How many commands of one account an instance holds in its lane at once.

A lane holds a bounded number of commands per instance (``concurrency``; JetStream allows
20,000 unacknowledged per durable), each waiting for its account's slot. Without a share,
one account's burst filled every place and every other account's replies waited behind it
in the stream: measured, another workspace's reply waited 30.7 s behind 1,500 sends of one
bot at 30/s (one instance, the default 512 places). An account now holds at most a quarter
of the places here, or ``ahead_s`` of its rate where that is more (to keep it at its full
rate: a slot is leased 0.5 s ahead), and never more than half. Each command beyond its
share is held by the server as a message schedule (``schedule.hold``, which takes no place
in the lane, where a nak'ed command would) and comes again when the account has room: one
interval after the previous one sent back, so that they come back in their order and about
once each. A share of only ``ahead_s`` of the rate cost the outbound benchmark's ten bots
on three instances 20 % more CPU per message in commands sent back and forth
(docs/benchmark-notes.md).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from switchboard.outbound.ratelimit import Limit

MIN_HELD = 8  # a slow account (a few sends a second) still holds a few


def room(limit: Limit, ahead_s: float, places: int) -> int:
    """How many commands of an account of ``limit`` one instance of ``places`` holds: a
    quarter of them, or more where its rate needs more (``ahead_s`` of it), and never more
    than half, so that others always find room. Pure."""
    wanted = max(MIN_HELD, math.ceil(ahead_s / limit.interval), places // 4)
    return max(1, min(wanted, places // 2))


def come_back_at(held: int, limit: Limit, last: float, now: float) -> float:
    """When a command that found its account's room full comes again: once the ones held
    could have left, and one interval after the last one sent back. Pure."""
    return max(now + held * limit.interval, last + limit.interval)


@dataclass
class AccountShare:
    """The commands of each account held here, and when the last one sent back returns."""

    ahead_s: float
    places: int  # the lane's, in this instance
    held: Counter[str] = field(default_factory=Counter)
    last_back: dict[str, float] = field(default_factory=dict)

    def take(self, name: str, limit: Limit, now: float) -> float | None:
        """Hold a command of account ``name`` (None: count it held, ``release`` later), or
        the delay after which it should come again."""
        held = self.held[name]
        if held < room(limit, self.ahead_s, self.places):
            self.held[name] = held + 1
            return None
        at = come_back_at(held, limit, self.last_back.get(name, 0.0), now)
        self.last_back[name] = at
        return at - now

    def release(self, name: str) -> None:
        self.held[name] -= 1
        if self.held[name] <= 0:
            del self.held[name]
