"""The NATS server's wall clock, as every instance of a service reads it: one time for the
times instances write for each other (rate-limit slots, pause ends), so no instance compares
a time another one wrote with its own clock, and instances need not agree through NTP.

How (Cristian's algorithm): a probe is written to a KV key and read back with the time the
server stamped on it (the stored message's ``time``). The server stamped it between the
moment the write was sent and the moment its ack came back, so the server's time at the
middle of that round trip is known to within half of it. Of several probes the one with the
shortest round trip wins. The estimate is tied to this process's monotonic clock, so a step
of the local wall clock (an NTP correction, a wrong clock) changes nothing.

A new estimate replaces the one in use only when the two cannot both be right (they differ by
more than their error bounds): in a cluster the stream's leader, whose clock stamps, can
change, and then the clock follows it; otherwise small corrections would make ``now`` jump
back and forth by a fraction of a millisecond for nothing. ``now`` never goes backwards.

No library at hand does this: nats-py exposes the stamp (``RawStreamMsg.time``) but has no
notion of the server's clock.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from switchboard.runtime.failures import InfrastructureError
from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import every, pause

log = get_logger(__name__)

# Probes per estimate: the shortest round trip of five is close to the link's floor even on
# a loaded machine, at a cost of ten small requests a minute.
PROBES = 5
# How often the estimate is renewed: monotonic clocks drift from the server's by parts per
# million (tens of microseconds a minute), far below a round trip.
RESYNC_S = 60.0


class ServerTimeError(InfrastructureError):
    """The server's time could not be read (no stamp on the probe, or the bus away)."""


@dataclass(frozen=True)
class Estimate:
    """The server's time ``at`` this process's monotonic ``local``, to within ``error``."""

    at: float
    local: float
    error: float

    def agrees(self, other: Estimate) -> bool:
        """Whether both can be right: their times for one moment are within both errors."""
        return abs(other.at - self.project(other.local)) <= self.error + other.error

    def project(self, local: float) -> float:
        return self.at + (local - self.local)


def best_of(samples: list[tuple[float, float, float]]) -> Estimate:
    """The estimate of the probe with the shortest round trip; each sample is (sent, stamped
    by the server, acked), sent and acked on the local monotonic clock."""
    sent, stamped, acked = min(samples, key=lambda s: s[2] - s[0])
    return Estimate(stamped, (sent + acked) / 2, (acked - sent) / 2)


class ServerClock:
    """``now()``: the server's wall time (seconds since the epoch), read without a round trip
    once :meth:`sync` has run. Every service's runtime holds one (``Runtime.clock``), probing
    the ``clock`` bucket."""

    def __init__(
        self,
        js: JetStreamContext,
        bucket: str,
        *,
        local: Callable[[], float] = time.monotonic,
        probes: int = PROBES,
    ) -> None:
        self.js = js
        self.bucket = bucket
        self.local = local
        self.probes = probes
        # one key per process: probes of instances never contend, and the bucket's TTL
        # drops the keys of processes that are gone
        self.key = f"clock.{uuid.uuid4().hex}"
        self.estimate: Estimate | None = None
        self._last = 0.0

    def utcnow(self) -> datetime:
        """:meth:`now` as an aware datetime, for records that keep datetimes."""
        return datetime.fromtimestamp(self.now(), UTC)

    def now(self) -> float:
        if self.estimate is None:
            raise ServerTimeError("the server's time is read before the first sync")
        t = max(self._last, self.estimate.project(self.local()))
        self._last = t
        return t

    async def sync(self) -> Estimate:
        """Probe the server's clock and take the estimate when the one in use cannot be right.
        A probe that fails (the bucket's stream electing a leader) is skipped; with none
        answered, ``ServerTimeError``."""
        samples, failure = [], None
        for _ in range(self.probes):
            try:
                samples.append(await self._probe())
            except (NatsError, TimeoutError) as exc:
                failure = exc
        if not samples:
            raise ServerTimeError(f"the server's time could not be read: {failure!r}")
        fresh = best_of(samples)
        if self.estimate is None or not self.estimate.agrees(fresh):
            if self.estimate is not None:
                log.warning(
                    "server clock moved",
                    by_s=round(fresh.at - self.estimate.project(fresh.local), 6),
                    error_s=round(fresh.error, 6),
                )
            self.estimate = fresh
        elif fresh.error < self.estimate.error:
            self.estimate = fresh  # both right: the tighter one (``now`` still never goes back)
        return self.estimate

    async def first_sync(self, within_s: float = 30.0) -> Estimate:
        """:meth:`sync` at start-up, asked again for ``within_s`` while the server cannot
        answer (a node of the cluster down, a stream electing its leader), as the bus
        connection is; then the last error."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(ServerTimeError),
            stop=stop_after_delay(within_s),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            reraise=True,
        ):
            with attempt:
                return await self.sync()
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def run(self, stop: asyncio.Event, seconds: float = RESYNC_S) -> None:
        """Renew the estimate every ``seconds`` until ``stop``; the first renewal comes a
        period after :meth:`first_sync`, which start-up has just run."""
        if not await pause(stop, seconds):
            await every(seconds, stop, self.sync, "server clock sync failed")

    async def _probe(self) -> tuple[float, float, float]:
        subject = f"$KV.{self.bucket}.{self.key}"
        sent = self.local()
        ack = await self.js.publish(subject, b"")
        acked = self.local()
        # the stream API, not a direct get: it answers whether or not the bucket allows direct
        msg = await self.js.get_msg(f"KV_{self.bucket}", seq=ack.seq)
        if msg.time is None:
            raise ServerTimeError(f"no server time stamp on {subject}")
        return sent, msg.time.timestamp(), acked
