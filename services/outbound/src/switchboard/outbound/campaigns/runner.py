"""Leading a campaign: one instance at a time (a lease in the ``leases`` bucket) fans the
recipients out into the bulk lane, reports progress at a fixed cadence and announces the
completion. Every other instance only sends.

Fan-out is paced: each account gets at most ``lead_s`` seconds of its rate queued in the
stream, so a pause takes effect within that, a cancel leaves little to fail, and the
recipients flow to whichever accounts drain fastest (one account paused by a 429 or broken
does not hold the others back). The cursor is saved after each published chunk; a new
leader re-publishes from the saved cursor and JetStream's duplicate window (and the
attempt records after it) drops what was already published.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nats.js.kv import KeyValue

from switchboard.events.catalog.delivery import CampaignCompleted, CampaignProgress
from switchboard.events.catalog.outbound import CampaignRecipient, SendBulk, StartCampaign
from switchboard.events.ids import stable_hash
from switchboard.outbound.campaigns.pool import Member, PoolHealth, members
from switchboard.outbound.campaigns.state import (
    ACTIVE,
    CampaignState,
    CampaignStore,
    Cursor,
)
from switchboard.outbound.campaigns.tally import Tally, left_by_account, tally
from switchboard.outbound.campaigns.view import CampaignView
from switchboard.outbound.limits import account_rate
from switchboard.runtime.accounts import AccountCache
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.lease import (
    Lease,
    LeaseLostError,
    LeaseView,
    claim_action,
    while_held,
)
from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import pause

log = get_logger(__name__)


@dataclass
class CampaignTiming:
    tick_s: float = 0.2
    lead_s: float = 3.0
    progress_s: float = 5.0
    lease_s: float = 6.0  # a leader silent this long (on the contender's clock) is replaced
    # The leader writes the campaign's records again this often (``CampaignStore.renew``).
    renew_s: float = 86400.0

    @property
    def heartbeat_s(self) -> float:
        return self.lease_s / 3

    @property
    def margin_s(self) -> float:
        """The leader stops this long before a contender could take over."""
        return self.lease_s / 6


@dataclass
class CampaignRunner:
    """The leader's loop for one campaign."""

    bus: Bus
    store: CampaignStore
    view: CampaignView
    accounts: AccountCache
    lease: Lease
    key: str  # the campaign's key (``state.campaign_key``)
    timing: CampaignTiming
    campaign_id: str = ""  # the caller's id, as sends and events carry it
    health: PoolHealth | None = None  # which members take new sends (None: all)
    clock: Callable[[], float] = time.time
    cursor: Cursor = field(default_factory=Cursor)
    cursor_revision: int = 0
    _batch: tuple[int, list[CampaignRecipient]] | None = None
    _samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=2))
    _last_tick: int = -1
    _renewed_at: float = float("-inf")  # by this leader: a new one renews at once

    async def run(self, stop: asyncio.Event) -> None:
        self.cursor, self.cursor_revision = await self.store.cursor(self.key)
        while not stop.is_set():
            state = await self.store.state(self.key)
            if state is None or state.status not in ACTIVE:
                return
            self.campaign_id = state.campaign_id
            self.view.note(state)
            if self.clock() - self._renewed_at >= self.timing.renew_s:
                await self.store.renew(self.key)
                await self._save_cursor()
                self._renewed_at = self.clock()
            start = state.start()
            left = await left_by_account(self.bus, state, self.accounts)
            if state.status == "running" and start is not None and self._due(start):
                await self.fan_out(state, start, left)
                left = await left_by_account(self.bus, state, self.accounts)
            # The failures (a few reads) only when they are reported or may end it.
            if self._progress_due(state) or not sum(left.values()):
                numbers = await tally(self.bus, self.store, state, self.accounts, self.cursor, left)
                if await self._finished(state, numbers):
                    return
                await self._progress(state, start, numbers)
            await pause(stop, self.timing.tick_s)

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _tick(self, state: CampaignState) -> int:
        began = (state.started_at or state.created_at).timestamp()
        return int(max(0.0, self.clock() - began) // self.timing.progress_s)

    def _progress_due(self, state: CampaignState) -> bool:
        return self._tick(state) > self._last_tick

    def _due(self, start: StartCampaign) -> bool:
        return start.not_before is None or self._utcnow() >= start.not_before

    # -- fan-out -------------------------------------------------------------------------

    def _rate(self, start: StartCampaign, key: str) -> float:
        member = self._member(start, key)
        found = self.accounts.get(member.channel, member.account)
        return account_rate(found) if found is not None else 1.0

    def _room(self, start: StartCampaign, key: str, left: dict[str, int]) -> tuple[float, float]:
        """A member's rate, and how many more of its sends may be queued: at most
        ``lead_s`` of its rate (at least 5), less what it has ``left``."""
        rate = self._rate(start, key)
        return rate, max(5.0, rate * self.timing.lead_s) - left.get(key, 0)

    def _member(self, start: StartCampaign, key: str) -> Member:
        found = next((m for m in members(start) if m.key(start.channel) == key), None)
        return found if found is not None else Member(start.channel, key)

    def _usable(self, workspace: str, start: StartCampaign, key: str) -> bool:
        """Whether new sends may go to a member (a dropped-out one gets none)."""
        return self.health is None or self.health.usable(workspace, self._member(start, key))

    async def _recipient(self, state: CampaignState) -> tuple[int, int, CampaignRecipient] | None:
        """The next recipient after the cursor, or None (done, or its batch not here yet)."""
        while True:
            n, p = self.cursor.batch, self.cursor.pos
            if state.final_batch is not None and n > state.final_batch:
                return None
            if n not in state.batches:
                return None
            if self._batch is None or self._batch[0] != n:
                self._batch = (n, await self.store.batch(self.key, n))
            rows = self._batch[1]
            if p < len(rows):
                return n, p, rows[p]
            self.cursor.batch, self.cursor.pos = n + 1, 0

    async def fan_out(
        self, state: CampaignState, start: StartCampaign, left: dict[str, int]
    ) -> None:
        everyone = [m.key(start.channel) for m in members(start)]
        pool = [k for k in everyone if self._usable(state.workspace_id, start, k)]
        if not pool:
            return  # every account dropped out for now: wait for one to come back
        rates: dict[str, float] = {}
        room: dict[str, float] = {}
        for a in pool:
            rates[a], room[a] = self._room(start, a, left)
        before = self.cursor.model_copy(deep=True)
        # The batch is read again each round: an erasure may have rewritten it (``erasure``).
        self._batch = None
        batch: list[SendBulk] = []
        while len(batch) < 2000:
            found = await self._recipient(state)
            if found is None:
                break
            n, p, who = found
            if who.account is not None:
                account = who.account
                if account not in room:
                    rates[account], room[account] = self._room(start, account, left)
                if room[account] <= 0:
                    break  # its account is full: wait, in order
            else:
                account = max(pool, key=lambda a: room[a] / rates[a])
                if room[account] <= 0:
                    break
            room[account] -= 1
            member = self._member(start, account)
            batch.append(
                SendBulk(
                    message_id=f"{self.campaign_id}:{n}:{p}",
                    channel=member.channel,
                    account=member.account,
                    recipient=who.recipient,
                    content=start.content,
                    keyboard=start.keyboard,
                    priority=start.priority,
                    expires_at=start.expires_at,
                    campaign_id=self.campaign_id,
                )
            )
            self.cursor.pos = p + 1
            self.cursor.fanned += 1
            self.cursor.by_account[account] = self.cursor.by_account.get(account, 0) + 1
        if not batch:
            if self.cursor != before:
                await self._save_cursor()  # empty batches skipped over
            return
        for i in range(0, len(batch), 250):
            chunk = batch[i : i + 250]
            await asyncio.gather(
                *(self.bus.publish(c, workspace_id=state.workspace_id) for c in chunk)
            )
        await self._save_cursor()

    async def _save_cursor(self) -> None:
        revision = await self.store.save_cursor(self.key, self.cursor, self.cursor_revision)
        if revision is None:
            raise LeaseLostError(f"cursor of {self.campaign_id} written by another")
        self.cursor_revision = revision

    # -- progress and the end ------------------------------------------------------------

    async def _progress(self, state: CampaignState, start: StartCampaign | None, t: Tally) -> None:
        now = self.clock()
        self._samples.append((now, t.sent + t.failed))
        tick = self._tick(state)
        if tick <= self._last_tick:
            return
        self._last_tick = tick
        rate = self._rate_now(now)
        if rate <= 0 and start is not None:
            keys = {m.key(start.channel) for m in members(start)}
            rate_for_eta = sum(self._rate(start, a) for a in keys)
        else:
            rate_for_eta = rate
        eta_s = t.remaining / rate_for_eta if rate_for_eta > 0 else None
        await self.bus.publish(
            CampaignProgress(
                campaign_id=self.campaign_id,
                at=self._utcnow(),
                status=state.status,
                total=t.total,
                received=t.received,
                queued=t.fanned,
                sent=t.sent,
                failed=t.failed,
                remaining=t.remaining,
                rate_per_s=round(rate, 2),
                eta_s=None if eta_s is None else round(eta_s, 1),
                eta=None if eta_s is None else self._utcnow() + timedelta(seconds=eta_s),
                tick=tick,
            ),
            workspace_id=state.workspace_id,
        )

    def _rate_now(self, now: float) -> float:
        """Sends done per second since the previous progress event."""
        if len(self._samples) < 2:
            return 0.0
        (t0, done0), (t1, done1) = self._samples[-2], self._samples[-1]
        return max(0.0, (done1 - done0) / (t1 - t0)) if t1 > t0 else 0.0

    async def _finished(self, state: CampaignState, t: Tally) -> bool:
        if t.left > 0:
            return False
        if state.status != "cancelled":
            if t.total is None or self.cursor.fanned < t.total:
                return False
            if await self._recipient(state) is not None:
                return False
        outcome = "cancelled" if state.status == "cancelled" else "completed"
        total = t.total if t.total is not None else t.received
        began = state.started_at or state.created_at
        now = self._utcnow()
        summary = {
            "outcome": outcome,
            "total": total,
            "sent": t.sent,
            "failed": t.failed,
            "cancelled": max(0, total - t.sent - t.failed),
        }
        await self.bus.publish(
            CampaignCompleted(
                **summary,
                campaign_id=self.campaign_id,
                at=now,
                started_at=began,
                duration_s=max(0.0, (now - began).total_seconds()),
                failures=t.failures,
            ),
            workspace_id=state.workspace_id,
        )

        def complete(current: CampaignState | None) -> CampaignState | None:
            if current is None or current.status == "completed":
                return None
            current.status = "completed"
            current.completed_at = now
            current.outcome = summary
            return current

        _, after = await self.store.update(self.key, complete)
        if after is not None:
            self.view.note(after)
        log.info("campaign completed", campaign=self.campaign_id, **summary)
        return True


@dataclass
class CampaignSupervisor:
    """In every instance: finds active campaigns without a live leader and leads them."""

    bus: Bus
    store: CampaignStore
    view: CampaignView
    accounts: AccountCache
    leases: KeyValue
    timing: CampaignTiming
    instance: str
    owner: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    health: PoolHealth | None = None
    # Campaign dates (started, not before) are written by other instances: the server's
    # clock in the service (``Runtime.clock``), handed to each runner.
    clock: Callable[[], float] = time.time
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    held: dict[str, Lease] = field(default_factory=dict)
    _next_try: dict[str, float] = field(default_factory=dict)  # on time.monotonic
    _leases: LeaseView | None = None

    def lease_key(self, cid: str) -> str:
        return "outbound.campaign." + stable_hash(cid)

    async def run(self, stop: asyncio.Event) -> None:
        owner = f"{self.instance}/{self.owner}"
        try:
            while not stop.is_set():
                self.view.any_change.clear()
                for cid, state in list(self.view.states.items()):
                    task = self.running.get(cid)
                    if task is not None and not task.done():
                        continue
                    if state.status not in ACTIVE or self._next_try.get(cid, 0) > time.monotonic():
                        continue
                    try:
                        lease = await self._claim(cid, owner)
                    except Exception as exc:
                        log.warning("campaign lease failed", campaign=cid, error=str(exc))
                        continue
                    if lease is None:
                        # Led elsewhere (or not yet seen silent for a whole lease): look again.
                        self._next_try[cid] = time.monotonic() + self.timing.heartbeat_s
                        continue
                    runner = CampaignRunner(
                        self.bus, self.store, self.view, self.accounts, lease, cid, self.timing,
                        state.campaign_id, health=self.health, clock=self.clock,
                    )  # fmt: skip
                    self.held[cid] = lease
                    self.running[cid] = asyncio.create_task(self._lead(runner, stop), name=cid)
                await pause(self.view.any_change, 1.0)
        finally:
            tasks = [t for t in self.running.values() if not t.done()]
            if tasks:
                await asyncio.wait(tasks, timeout=5)

    async def _claim(self, cid: str, owner: str) -> Lease | None:
        """The campaign's lease when it is free (absent, or its revision seen unchanged for a
        whole lease on this instance's clock), else None."""
        if self._leases is None:
            self._leases = LeaseView(self.leases)
        key = self.lease_key(cid)
        observed = await self._leases.observe(key)
        active = {lease.nonce for lease in self.held.values() if not lease.lost.is_set()}
        action = claim_action(
            observed,
            owner=owner,
            active_nonces=active,
            now=self._leases.clock(),
            ttl=self.timing.lease_s,
        )
        if action is None:
            return None
        lease = Lease(
            self.leases,
            key,
            owner,
            ttl=self.timing.lease_s,
            heartbeat=self.timing.heartbeat_s,
            margin=self.timing.margin_s,
        )
        return lease if await lease.claim(action, observed) else None

    async def _lead(self, runner: CampaignRunner, stop: asyncio.Event) -> None:
        cid = runner.key
        log.info("leading campaign", campaign=cid)
        try:
            await while_held(runner.lease, runner.run(stop))
        except LeaseLostError:
            log.info("campaign led elsewhere now", campaign=cid)
        except Exception:
            log.exception("campaign leader failed; another try soon", campaign=cid)
            self._next_try[cid] = time.monotonic() + 1.0
        finally:
            await runner.lease.release()
            self.held.pop(cid, None)
