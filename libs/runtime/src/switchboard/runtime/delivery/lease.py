"""Single ownership: one lease per key in the ``leases`` KV bucket, the one mechanism for
"exactly one instance does this" (MTProto sessions, campaign leaders).

The guarantee is strict (Telegram destroys an auth key used from two connections at once):
**work runs only under a valid lease, and a lease is taken over only after its holder must
already have stopped.**

How, without trusting any clock across machines:

* A claim is a compare-and-set on the key's revision: ``create`` when the key is absent,
  ``update(last=<observed revision>)`` to take over. Of several contenders exactly one wins.
* The holder renews with ``update(last=<its revision>)`` every ``heartbeat`` seconds. Its
  lease is valid until ``start + ttl - margin``, where ``start`` is when it *sent* the last
  renewal that succeeded, read on its own monotonic clock. When that moment comes without a
  renewal (NATS unreachable, a renewal refused), it stops its work (disconnects) first and
  only then gives up.
* A contender judges expiry by what it has observed: a revision it has seen unchanged for
  ``ttl`` seconds on *its* monotonic clock. It saw the revision after the server stored it,
  which was after the holder sent it, so the contender's earliest take-over is later than
  ``start + ttl``, and the holder stopped by ``start + ttl - margin``.

So only clock *rates* matter (monotonic clocks drift by parts per million), never offsets;
an ``expires_at`` in the value is written for people and never used for a decision. The
bucket's own TTL (its max age, 30 s) is only a backstop that removes keys nobody renews;
the lease TTL may be shorter (it must not be longer, or the key could vanish under a live
holder). A holder stalled for longer than ``margin`` (a frozen VM) is the one case this
cannot cover; the margin is configurable for that reason.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from switchboard.runtime.aggregates import WRONG_LAST_SEQUENCE
from switchboard.runtime.failures import InfrastructureError
from switchboard.runtime.kvwatch import follow
from switchboard.runtime.logging import get_logger
from switchboard.runtime.tasks import cancel_and_wait

log = get_logger(__name__)
Clock = Callable[[], float]
T = TypeVar("T")


def _uncounted(event: str) -> None:
    """The default of :attr:`Lease.on_event`: a lease whose owner counts nothing."""


@dataclass(frozen=True)
class LeaseValue:
    """What a lease key holds."""

    owner: str
    nonce: str
    beat: int
    ttl_s: float
    expires_at: str = ""  # informational only (see the module docstring)

    def encode(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> LeaseValue | None:
        try:
            data: dict[str, Any] = json.loads(raw or b"")
            return cls(
                owner=str(data["owner"]),
                nonce=str(data["nonce"]),
                beat=int(data["beat"]),
                ttl_s=float(data["ttl_s"]),
                expires_at=str(data.get("expires_at", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Observed:
    """A key's revision as this instance saw it, and when it first saw that revision."""

    revision: int
    value: LeaseValue | None
    seen_at: float


def expired(observed: Observed, now: float, ttl: float) -> bool:
    """The holder of ``observed`` must have disconnected: its revision has not changed for
    the longer of our TTL and the TTL it wrote, measured on our clock since we first saw it."""
    value_ttl = observed.value.ttl_s if observed.value else ttl
    return now - observed.seen_at >= max(ttl, value_ttl)


class ClaimAction:
    CREATE = "create"
    TAKE_OVER = "take_over"
    RECLAIM = "reclaim"  # our own, unused key (a lost lease we already disconnected from)


def claim_action(
    observed: Observed | None, *, owner: str, active_nonces: set[str], now: float, ttl: float
) -> str | None:
    """How to claim a key (or None while someone else may hold it)."""
    if observed is None:
        return ClaimAction.CREATE
    value = observed.value
    if value is not None and value.owner == owner and value.nonce not in active_nonces:
        return ClaimAction.RECLAIM
    if value is not None and value.owner == owner:
        return None  # held by us right now
    return ClaimAction.TAKE_OVER if expired(observed, now, ttl) else None


class LeaseView:
    """This instance's view of lease keys: for every key, the revision and when this
    instance first saw it (the basis of take-over decisions). Fed by a KV watch
    (:meth:`run`) or by reads (:meth:`observe`)."""

    def __init__(self, kv: KeyValue, clock: Clock = time.monotonic, pattern: str = ">") -> None:
        self.kv = kv
        self.clock = clock
        self.pattern = pattern
        self.keys: dict[str, Observed] = {}
        self.loaded = asyncio.Event()

    def get(self, key: str) -> Observed | None:
        return self.keys.get(key)

    def apply(self, key: str, revision: int, value: bytes | None, operation: str | None) -> None:
        if operation in ("DEL", "PURGE"):
            self.keys.pop(key, None)
            return
        known = self.keys.get(key)
        if known is not None and known.revision >= revision:
            return  # a restarted watch replays what we saw: keep the first sighting
        self.keys[key] = Observed(revision, LeaseValue.decode(value), self.clock())

    def forget(self, key: str) -> None:
        """Drop a key the watch cannot report gone (removed by the bucket's max age)."""
        self.keys.pop(key, None)

    async def observe(self, key: str) -> Observed | None:
        """Read ``key`` now and note its revision (None when there is no lease)."""
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            self.forget(key)
            return None
        self.apply(key, int(entry.revision or 0), entry.value, entry.operation)
        return self.get(key)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the keys of ``pattern`` until ``stop``."""
        await follow(self.kv, self._applied, self.loaded, stop, keys=self.pattern)

    def _applied(self, entry: KeyValue.Entry) -> None:
        self.apply(entry.key, int(entry.revision or 0), entry.value, entry.operation)


@dataclass
class Lease:
    """One held lease: claim, renew in the background, release. ``lost`` is set the moment
    the lease may no longer be relied on; whoever connected under it must disconnect."""

    kv: KeyValue
    key: str
    owner: str
    ttl: float
    heartbeat: float
    margin: float
    clock: Clock = time.monotonic
    on_event: Callable[[str], None] = _uncounted  # claim, take_over, lost, release
    nonce: str = field(default_factory=lambda: uuid.uuid4().hex)
    revision: int = 0
    valid_until: float = 0.0
    beat: int = 0
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    lost_reason: str = ""
    _task: asyncio.Task[None] | None = None
    _released: bool = False

    def valid(self) -> bool:
        return not self.lost.is_set() and self.clock() < self.valid_until

    def require(self, doing: str) -> None:
        """Raise LeaseLostError unless the lease is valid now: for the step right after work
        that a lost cancel may have let finish (``closed_when_lost``), before anything is
        done under the lease."""
        if not self.valid():
            raise LeaseLostError(self.lost_reason or f"lease lost while {doing}")

    def remaining(self) -> float:
        return max(0.0, self.valid_until - self.clock()) if not self.lost.is_set() else 0.0

    def _value(self, beat: int) -> bytes:
        expires = datetime.now(UTC) + timedelta(seconds=self.ttl)
        return LeaseValue(
            owner=self.owner,
            nonce=self.nonce,
            beat=beat,
            ttl_s=self.ttl,
            expires_at=expires.isoformat(),
        ).encode()

    async def claim(self, action: str, observed: Observed | None) -> bool:
        """Compare-and-set the key to our value; True when we hold the lease."""
        start = self.clock()
        try:
            if action == ClaimAction.CREATE:
                async with asyncio.timeout(5):
                    revision = await self.kv.create(self.key, self._value(0))
            else:
                assert observed is not None
                async with asyncio.timeout(5):
                    revision = await self.kv.update(
                        self.key, self._value(0), last=observed.revision
                    )
        except KeyWrongLastSequenceError:
            return False
        except (TimeoutError, NatsTimeoutError) as exc:
            # Unknown outcome: if it was stored, the key names us with an unused nonce and the
            # next tick reclaims it (nothing ever connected under it).
            log.warning("lease claim timed out", key=self.key, error=str(exc))
            return False
        self.revision = revision
        self.valid_until = start + self.ttl - self.margin
        self._task = asyncio.create_task(self._renew(), name=f"lease {self.key}")
        self.on_event("take_over" if action == ClaimAction.TAKE_OVER else "claim")
        return True

    async def _renew(self) -> None:
        last_start = self.clock()
        pending: tuple[int, float] | None = None  # a renewal whose outcome is unknown
        while not self._released:
            now = self.clock()
            if now >= self.valid_until:
                self._lose("not renewed in time")
                return
            await asyncio.sleep(max(0.0, min(last_start + self.heartbeat, self.valid_until) - now))
            if self._released:
                return
            if self.clock() >= self.valid_until:
                self._lose("not renewed in time")
                return
            start = self.clock()
            beat = self.beat + 1
            try:
                async with asyncio.timeout(max(0.05, self.valid_until - start)):
                    revision = await self.kv.update(self.key, self._value(beat), last=self.revision)
            except KeyWrongLastSequenceError:
                if pending is not None and await self._adopt(pending):
                    pending = None
                    continue
                self._lose("taken over or removed")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Unknown outcome; try again soon, the deadline still stands.
                pending = (beat, start)
                self.beat = beat
                log.warning("lease renewal failed", key=self.key, error=str(exc))
                last_start = start - self.heartbeat + min(self.heartbeat / 4, 1.0)
                continue
            pending = None
            self.beat = beat
            self.revision = revision
            self.valid_until = start + self.ttl - self.margin
            last_start = start

    async def _adopt(self, pending: tuple[int, float]) -> bool:
        """A renewal that timed out may have been stored after all: if the key holds exactly
        that renewal, continue from it (valid from when that renewal was sent)."""
        beat, start = pending
        try:
            entry = await self.kv.get(self.key)
        except Exception:
            return False
        value = LeaseValue.decode(entry.value)
        if value is None or value.nonce != self.nonce or value.beat != beat:
            return False
        self.revision = int(entry.revision or 0)
        self.valid_until = start + self.ttl - self.margin
        return self.valid()

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            self.lost.set()
            self.on_event("lost")
            log.warning("lease lost", key=self.key, reason=reason)

    async def stop_renewing(self) -> None:
        self._released = True
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def release(self) -> None:
        """Give the lease back at once (call only after disconnecting): delete the key if it
        is still ours, so another instance may claim it without waiting for the TTL."""
        await self.stop_renewing()
        if not self.lost.is_set():
            self.lost_reason = "released"
            self.lost.set()
        try:
            async with asyncio.timeout(5):
                await self._delete()
            self.on_event("release")
        except Exception as exc:  # taken over meanwhile, or NATS away: the TTL frees it
            log.info("lease not deleted", key=self.key, error=str(exc))

    async def _delete(self) -> None:
        """Delete the key if it is still ours. A renewal cancelled in flight (by the release
        itself) may have been stored: then the key holds our nonce one revision on."""
        try:
            await self.kv.delete(self.key, last=self.revision)
        except APIError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
            entry = await self.kv.get(self.key)
            value = LeaseValue.decode(entry.value)
            if value is None or value.nonce != self.nonce or entry.revision == self.revision:
                raise
            await self.kv.delete(self.key, last=entry.revision)


class LeaseLostError(InfrastructureError):
    """The lease lapsed or was taken (or, for a projection, its checkpoint moved under it)
    while work that needs single ownership was running: stop and stand by."""


async def while_held(lease: Lease, work: Awaitable[T]) -> T:
    """Run ``work`` only as long as ``lease`` is held: if it is lost first, ``work`` is
    cancelled (its ``finally`` disconnects) and LeaseLostError is raised."""
    task = asyncio.ensure_future(work)
    lost = asyncio.ensure_future(lease.lost.wait())
    try:
        await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await cancel_and_wait([task])
        raise
    finally:
        lost.cancel()
    if task.done():
        return task.result()
    await cancel_and_wait([task])  # again and again: a lost cancel must not keep it running
    raise LeaseLostError(lease.lost_reason or "lease lost")


@asynccontextmanager
async def closed_when_lost(
    lease: Lease, close: Callable[[], Awaitable[None]]
) -> AsyncIterator[None]:
    """Within the block, ``close`` runs the moment ``lease`` is lost, whatever the cancelled
    work is doing: Python 3.11's ``wait_for`` drops a cancel that arrives as the call it
    waits on completes (python/cpython#86296), so a connection closed only by the work's
    ``finally`` can outlive its lease (the chaos test saw a session serve on until the next
    holder's connection made Telegram answer AUTH_KEY_DUPLICATED)."""

    async def guard() -> None:
        await lease.lost.wait()
        await close()

    task = asyncio.create_task(guard(), name=f"closed when {lease.key} is lost")
    try:
        yield
    finally:
        await cancel_and_wait([task])
