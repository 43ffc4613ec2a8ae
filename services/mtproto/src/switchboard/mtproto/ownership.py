"""Which sessions this instance holds: claim, spread, take over, hand back.

Every ``tick`` the instance compares the sessions that should be connected (Postgres) with
what it observes in the leases bucket, and claims up to its fair share (an even split over
the live instances, at most ``max_sessions``): free keys at once, a crashed holder's keys
once they are observed unchanged for the TTL. An instance over its share (another instance
joined) hands the excess back gracefully. Instances announce themselves with a presence key
in the same bucket, renewed with the leases, so a dead instance drops out of the split at
the same moment its leases become claimable. On shutdown every session is disconnected and
its lease deleted at once, so the others take over without waiting for the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from nats.js.kv import KeyValue

from switchboard.events.catalog.mtproto import DisconnectReason
from switchboard.mtproto.leases import (
    Clock,
    Lease,
    LeaseValue,
    LeaseView,
    claim_action,
    fair_share,
    hrw_score,
    instance_key,
    session_key,
)
from switchboard.mtproto.metrics import LEASE_EVENTS
from switchboard.mtproto.runner import SessionRunner
from switchboard.mtproto.sessions import SessionStore
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import every, pause
from switchboard.runtime.tasks import cancel_and_wait

log = get_logger(__name__)
MakeRunner = Callable[[str, Lease], SessionRunner]


@dataclass(kw_only=True, eq=False, repr=False)
class Ownership:
    """The instance's sessions and the loop that keeps them balanced."""

    kv: KeyValue
    view: LeaseView
    sessions: SessionStore
    settings: MtprotoSettings
    owner: str
    make_runner: MakeRunner
    clock: Clock = time.monotonic
    runners: dict[str, SessionRunner] = field(default_factory=dict, init=False)
    holds: set[str] = field(default_factory=set, init=False)
    settled_at: float = field(default=0.0, init=False)

    def lease(self, session_id: str) -> Lease:
        s = self.settings
        return Lease(
            kv=self.kv,
            key=session_key(session_id),
            owner=self.owner,
            ttl=s.lease_ttl_s,
            heartbeat=s.heartbeat,
            margin=s.margin,
            clock=self.clock,
        )

    def _active_nonces(self) -> set[str]:
        return {r.lease.nonce for r in self.runners.values()}

    async def _claim(self, session_id: str) -> Lease | None:
        """Claim a session's lease if it is free or expired (as we observe it)."""
        key = session_key(session_id)
        observed = self.view.get(key)
        action = claim_action(
            observed,
            owner=self.owner,
            active_nonces=self._active_nonces(),
            now=self.clock(),
            ttl=self.settings.lease_ttl_s,
        )
        if action is None:
            return None
        lease = self.lease(session_id)
        if await lease.claim(action, observed):
            return lease
        # The view may be behind what is stored (a watch that missed an update across a NATS
        # node's restart, or a key the bucket's max age removed): read the key, so the next
        # tick decides on it, rather than comparing against a stale revision every tick.
        await self.view.observe(key)
        return None

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[Lease | None]:
        """Hold a session's lease for a short piece of work (a login step)."""
        lease = None
        if session_id not in self.runners and session_id not in self.holds:
            self.holds.add(session_id)
            try:
                lease = await self._claim(session_id)
            finally:
                if lease is None:
                    self.holds.discard(session_id)
        try:
            yield lease
        finally:
            if lease is not None:
                await lease.release()
                self.holds.discard(session_id)

    def owned(self) -> list[str]:
        return sorted(sid for sid, r in self.runners.items() if not r.done)

    def connected(self) -> list[str]:
        return sorted(sid for sid, r in self.runners.items() if r.connected)

    async def tick(self) -> None:
        """Reconcile once: drop finished runners, hand back excess, claim up to the share."""
        for sid in [sid for sid, r in self.runners.items() if r.done]:
            del self.runners[sid]
        wanted = set(await self.sessions.claimable())
        live = self.view.live_instances(self.settings.lease_ttl_s) | {self.owner}
        target = fair_share(len(wanted), len(live), self.settings.max_sessions)
        if self.clock() < self.settled_at:
            return  # still learning which instances are alive
        # Runners handed back keep their place until they have disconnected and released:
        # their sessions are neither counted nor claimed again meanwhile.
        mine = [sid for sid, r in self.runners.items() if not r.stopping.is_set()]
        if len(mine) > target:
            excess = sorted(mine, key=lambda s: hrw_score(s, self.owner))[: len(mine) - target]
            for sid in excess:
                log.info("handing a session back", session_id=sid, target=target)
                LEASE_EVENTS.labels("hand_back").inc()
                self.runners[sid].stop(DisconnectReason.HANDED_BACK)
            return
        free = [s for s in wanted if s not in self.runners and s not in self.holds]
        free.sort(key=lambda s: hrw_score(s, self.owner), reverse=True)
        for sid in free:
            if len(mine) >= target:
                break
            lease = await self._claim(sid)
            if lease is None:
                continue
            runner = self.make_runner(sid, lease)
            runner.start()
            self.runners[sid] = runner
            mine.append(sid)
            log.info("session claimed", session_id=sid, instance=self.owner)

    async def _presence(self, stop: asyncio.Event) -> None:
        beat = 0
        key = instance_key(self.owner)
        while not stop.is_set():
            value = LeaseValue(self.owner, self.owner, beat, self.settings.lease_ttl_s)
            try:
                await self.kv.put(key, value.encode())
            except Exception as exc:
                log.warning("presence not renewed", error=str(exc))
            beat += 1
            await pause(stop, self.settings.heartbeat)

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: keep the share; then disconnect everything and give it back."""
        async with asyncio.timeout(30):
            await self.view.loaded.wait()
        presence = asyncio.create_task(self._presence(stop), name="presence")
        # Give the other instances' presence a heartbeat to show, so the first claims
        # already spread instead of one instance taking everything.
        self.settled_at = self.clock() + self.settings.heartbeat + self.settings.tick_s
        try:
            await every(self.settings.tick_s, stop, self.tick, "ownership tick failed")
        finally:
            await self.shutdown()
            await cancel_and_wait([presence])
            with contextlib.suppress(Exception):
                await self.kv.delete(instance_key(self.owner))

    async def shutdown(self) -> None:
        """Disconnect every session and release its lease (each runner does both, in order)."""
        runners = list(self.runners.values())
        for runner in runners:
            runner.stop(DisconnectReason.SHUTDOWN)
        tasks = [r.task for r in runners if r.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.runners.clear()
