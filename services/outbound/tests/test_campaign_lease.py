"""The campaign leader's lease on a real KV bucket: a contender decides only from revisions it
saw change (or not) on its own clock, so a clock that runs ahead never takes a live lease, a
silent leader is replaced after a whole lease, and a released one at once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from nats.js.kv import KeyValue

from switchboard.outbound.campaigns.runner import CampaignSupervisor, CampaignTiming
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.lease import LeaseView
from switchboard.runtime.testing import eventually

TIMING = CampaignTiming(lease_s=1.5)


@pytest.fixture
async def kv(bus: Bus) -> KeyValue:
    return await bus.kv("leases")


class _Clock:
    """A contender's monotonic clock, moved by the test."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _supervisor(kv: KeyValue, instance: str, clock: Any = time.monotonic) -> CampaignSupervisor:
    none: Any = None  # bus, store, view and accounts are not used to claim
    sup = CampaignSupervisor(none, none, none, none, kv, TIMING, instance)
    sup._leases = LeaseView(kv, clock=clock)
    return sup


def _cid() -> str:
    return f"c-{time.monotonic_ns()}"


async def test_a_contender_with_a_clock_ahead_does_not_take_a_live_lease(kv: KeyValue) -> None:
    cid = _cid()
    leader = await _supervisor(kv, "a")._claim(cid, "a/1")
    assert leader is not None
    clock = _Clock(time.monotonic() + 3600)  # an hour ahead of the leader's
    contender = _supervisor(kv, "b", clock)
    try:
        assert await contender._claim(cid, "b/1") is None
        first = leader.revision
        await eventually(lambda: _renewed(leader, first), message="a renewal")
        clock.now += 10 * TIMING.lease_s  # long after: but the leader renewed meanwhile
        assert await contender._claim(cid, "b/1") is None
        assert leader.valid()
    finally:
        await leader.release()


async def test_a_silent_leader_is_replaced_after_a_whole_lease(kv: KeyValue) -> None:
    cid = _cid()
    leader = await _supervisor(kv, "a")._claim(cid, "a/1")
    assert leader is not None
    await leader.stop_renewing()  # a frozen leader: its revision stays as it is
    clock = _Clock(0.0)
    contender = _supervisor(kv, "b", clock)
    assert await contender._claim(cid, "b/1") is None
    clock.now += TIMING.lease_s * 0.9
    assert await contender._claim(cid, "b/1") is None  # not a whole lease seen silent yet
    clock.now += TIMING.lease_s * 0.2
    taken = await contender._claim(cid, "b/1")
    assert taken is not None
    await taken.release()


async def test_a_released_lease_is_claimed_at_once(kv: KeyValue) -> None:
    cid = _cid()
    leader = await _supervisor(kv, "a")._claim(cid, "a/1")
    assert leader is not None
    contender = _supervisor(kv, "b", _Clock(0.0))
    assert await contender._claim(cid, "b/1") is None
    await leader.release()
    taken = await contender._claim(cid, "b/1")
    assert taken is not None
    await taken.release()


async def _renewed(lease: Any, revision: int) -> bool:
    return bool(lease.revision > revision)
