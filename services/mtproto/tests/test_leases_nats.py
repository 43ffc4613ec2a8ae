"""Leases on a real JetStream KV bucket: one winner per key, renewal, give-back, take-over
only after a full TTL observed unchanged, loss (and disconnect) before a contender could take
over when renewals fail, a renewal whose answer was lost adopted rather than dropped, and a
release that cancels a renewal in flight giving the lease back all the same."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from switchboard.mtproto.leases import (
    ClaimAction,
    Lease,
    LeaseView,
    claim_action,
    session_key,
    while_held,
)
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually

TTL, BEAT, MARGIN = 1.5, 0.25, 0.3


@pytest.fixture
async def kv(bus: Bus) -> KeyValue:
    return await bus.kv("leases")


def _lease(kv: Any, owner: str, key: str = session_key("s1")) -> Lease:
    return Lease(kv=kv, key=key, owner=owner, ttl=TTL, heartbeat=BEAT, margin=MARGIN)


class _FlakyKv:
    """Delegates to a bucket; renewals can be made to fail, or to succeed silently."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self.fail_updates = False
        self.lose_next_answer = False
        self.hang_after_store = False  # stored, but the answer never arrives
        self.in_flight = asyncio.Event()

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        if self.fail_updates:
            raise TimeoutError("nats unreachable")
        revision = await self.kv.update(key, value, last=last)
        if self.hang_after_store:
            self.in_flight.set()
            await asyncio.Event().wait()  # until cancelled
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise TimeoutError("answer lost")
        return revision

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kv, name)


async def test_one_winner_renewal_and_release(kv: KeyValue) -> None:
    a, b = _lease(kv, "a"), _lease(kv, "b")
    results = await asyncio.gather(a.claim(ClaimAction.CREATE, None),
                                   b.claim(ClaimAction.CREATE, None))  # fmt: skip
    assert sorted(results) == [False, True]
    holder = a if results[0] else b
    first = holder.revision
    await eventually(lambda: _true(holder.beat >= 3), timeout=5, message="renewed")
    assert holder.valid()
    assert holder.revision > first
    await holder.release()
    assert holder.lost.is_set()
    c = _lease(kv, "c")
    assert await c.claim(ClaimAction.CREATE, None)  # deleted: claimable at once
    await c.release()


async def _true(value: bool) -> bool:
    return value


async def test_take_over_only_after_a_full_ttl_unchanged(kv: KeyValue) -> None:
    view = LeaseView(kv)
    stop = asyncio.Event()
    watch = asyncio.create_task(view.run(stop))
    try:
        await asyncio.wait_for(view.loaded.wait(), 5)
        crashed = _lease(kv, "crashed")
        assert await crashed.claim(ClaimAction.CREATE, None)
        await crashed.stop_renewing()  # a SIGKILL: no renewal, no delete
        key = crashed.key

        async def seen() -> bool:
            observed = view.get(key)
            return observed is not None and observed.revision == crashed.revision

        await eventually(seen, message="claim observed")

        def action() -> str | None:
            return claim_action(view.get(key), owner="b", active_nonces=set(),
                                now=time.monotonic(), ttl=TTL)  # fmt: skip

        assert action() is None  # still possibly connected
        seen_at = view.get(key).seen_at  # type: ignore[union-attr]
        taker = _lease(kv, "b")

        async def claimable() -> bool:
            return action() == ClaimAction.TAKE_OVER

        await eventually(claimable, timeout=5, interval=0.02, message="expired")
        assert time.monotonic() >= seen_at + TTL
        assert await taker.claim(ClaimAction.TAKE_OVER, view.get(key))
        # a renewal on the old revision fails: the old holder can never renew its way back
        with pytest.raises(KeyWrongLastSequenceError):
            await kv.update(key, b"{}", last=crashed.revision)
        await taker.release()
    finally:
        stop.set()
        await watch


async def test_failing_renewals_lose_the_lease_before_anyone_may_take_it(kv: KeyValue) -> None:
    view = LeaseView(kv)
    stop = asyncio.Event()
    watch = asyncio.create_task(view.run(stop))
    flaky = _FlakyKv(kv)
    try:
        await asyncio.wait_for(view.loaded.wait(), 5)
        holder = _lease(flaky, "holder")
        assert await holder.claim(ClaimAction.CREATE, None)
        await eventually(lambda: _true(holder.beat >= 2), message="renewing")

        async def current() -> bool:
            observed = view.get(holder.key)
            return observed is not None and observed.revision == holder.revision

        await eventually(current, message="renewal observed")
        flaky.fail_updates = True  # NATS gone for the holder
        seen_at = view.get(holder.key).seen_at  # type: ignore[union-attr]

        async def work() -> None:
            await asyncio.sleep(3600)  # a connection, held until the lease is lost

        with pytest.raises(Exception, match="not renewed in time"):
            await while_held(holder, work())
        lost_at = time.monotonic()
        # the holder let go before a contender's earliest take-over (its sighting + TTL)
        assert lost_at <= seen_at + TTL
        assert not holder.valid()
    finally:
        stop.set()
        await watch


async def test_a_renewal_whose_answer_was_lost_is_adopted(kv: KeyValue) -> None:
    flaky = _FlakyKv(kv)
    holder = _lease(flaky, "holder")
    assert await holder.claim(ClaimAction.CREATE, None)
    await eventually(lambda: _true(holder.beat >= 1), message="renewing")
    flaky.lose_next_answer = True
    beat = holder.beat
    await eventually(lambda: _true(holder.beat >= beat + 3), timeout=5, message="adopted")
    assert not holder.lost.is_set()
    entry = await kv.get(holder.key)
    assert entry.revision == holder.revision
    await holder.release()


async def test_a_release_during_a_stored_renewal_still_gives_the_lease_back(kv: KeyValue) -> None:
    """A graceful stop can cancel a renewal the server stored before its answer arrived: the
    key is still the holder's, one revision on, and is deleted all the same (it was left to
    expire, and the gateway's graceful stop in tests/e2e then found a lease still held)."""
    flaky = _FlakyKv(kv)
    holder = _lease(flaky, "holder")
    assert await holder.claim(ClaimAction.CREATE, None)
    flaky.hang_after_store = True
    await asyncio.wait_for(flaky.in_flight.wait(), 5)
    await holder.release()
    other = _lease(kv, "other")
    assert await other.claim(ClaimAction.CREATE, None)  # deleted: claimable at once
    await other.release()
