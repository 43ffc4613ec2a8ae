"""Session TTL and idle cleanup: a session nobody uses is disconnected and its lease given
back, and it reconnects on demand.

"Used" means: it reads a peer (an active or pending subscription), runs a backfill, or
sent a message or answered a query within ``idle_ttl_s``. A session idle longer is
*parked* (``sessions.parked_at``): its runner disconnects it and releases the lease, and
no instance claims it (``claimable`` skips it). Demand un-parks it: a send or a directory
query on the bus (the command consumer sees every one), a send or a query over the API,
or a new subscription or backfill (those are rows that ``claimable`` looks for). Parking
re-checks the session's own queues after marking it, so a command that arrived meanwhile
un-parks it at once instead of waiting for the next one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import asyncpg
from nats.js.errors import NotFoundError

from switchboard.runtime.bus import Bus

# What makes a parked session claimable anyway: something it must do that is a row, not a
# message (the command consumer un-parks it for messages).
# A private chat followed because the session wrote to it (no command asked: command_id is
# NULL, ``Subscription.followed``) is no demand: parked, the session reads it when woken.
DEMAND = """EXISTS (SELECT 1 FROM subscriptions d WHERE d.session_id = sessions.session_id
                    AND d.status IN ('pending', 'active') AND d.command_id IS NOT NULL)
            OR EXISTS (SELECT 1 FROM backfills d WHERE d.session_id = sessions.session_id
                    AND d.status IN ('pending', 'running'))"""


def should_park(ttl_s: float | None, idle_for_s: float, busy: bool) -> bool:
    """Park a session that has been idle for its TTL and has nothing to do (no TTL: never)."""
    return ttl_s is not None and not busy and idle_for_s >= ttl_s


@dataclass
class IdleTimer:
    """When a session was last used (monotonic seconds)."""

    used_at: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.used_at = time.monotonic()

    def idle_for(self) -> float:
        return time.monotonic() - self.used_at


class Parking:
    """Parks and wakes sessions in ``sessions.parked_at``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def busy(self, session_id: str) -> bool:
        """Does the session read a peer or run a backfill (it must stay connected)?"""
        return bool(
            await self.pool.fetchval(
                f"SELECT {DEMAND} FROM sessions WHERE session_id = $1", session_id
            )
        )

    async def park(self, session_id: str) -> bool:
        """Mark the session parked unless it has something to do; True when parked."""
        done = await self.pool.fetchval(
            f"""UPDATE sessions SET parked_at = now() WHERE session_id = $1
                   AND parked_at IS NULL AND NOT ({DEMAND}) RETURNING true""",
            session_id,
        )
        return bool(done)

    async def wake(self, session_id: str) -> bool:
        """Un-park a session (demand arrived); True when it was parked."""
        done = await self.pool.fetchval(
            """UPDATE sessions SET parked_at = NULL WHERE session_id = $1
                   AND parked_at IS NOT NULL RETURNING true""",
            session_id,
        )
        return bool(done)

    async def parked(self, session_id: str) -> bool:
        value = await self.pool.fetchval(
            "SELECT parked_at IS NOT NULL FROM sessions WHERE session_id = $1", session_id
        )
        return bool(value)


async def queued(bus: Bus, stream: str, consumers: list[str]) -> int:
    """Messages waiting in (or delivered and not yet acked by) the session's queues."""
    total = 0
    for name in consumers:
        try:
            info = await bus.js.consumer_info(stream, name)
        except NotFoundError:  # not created yet: nothing waits in it
            continue
        total += int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    return total
