"""A gateway whose view of a session's lease fell behind (its KV watch missed a renewal, as
across a NATS node's restart) still takes the session over once the lease lapses: a failed
take-over reads the key, so the next tick decides on what is stored. Before, every tick
compared against the stale revision and failed, and the session stayed unowned (the chaos
test: 8 of 9 sessions connected again, for a minute)."""

from __future__ import annotations

from typing import Any, cast

from switchboard.events.streams import LEASES
from switchboard.mtproto.leases import session_key
from switchboard.mtproto.ownership import Ownership
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.lease import LeaseValue, LeaseView

from .mtproto_support import gateway_settings


async def test_a_view_behind_the_store_heals_and_the_lapsed_lease_is_taken_over(
    nats_url: str,
) -> None:
    bus = await Bus.connect(nats_url, name="test-ownership-view")
    try:
        await bus.provision()
        kv = await bus.kv(LEASES.name)
        key = session_key("behind")
        # Another gateway held the session: claimed it, renewed it once, then went away.
        first = await kv.create(key, LeaseValue("gw-b", "n1", 0, 3.0).encode())
        await kv.update(key, LeaseValue("gw-b", "n1", 1, 3.0).encode(), last=first)
        clock = [100.0]
        view = LeaseView(kv, clock=lambda: clock[0])
        # This gateway's watch saw the claim but missed the renewal.
        view.apply(key, first, LeaseValue("gw-b", "n1", 0, 3.0).encode(), None)
        settings = gateway_settings(nats_url, "postgresql://unused", "http://unused")
        ownership = Ownership(
            kv=kv,
            view=view,
            sessions=cast(Any, None),
            settings=settings,
            owner="gw-a",
            make_runner=cast(Any, None),
            clock=lambda: clock[0],
        )
        clock[0] += 10.0  # long past the lease's TTL: a take-over is due
        async with ownership.hold("behind") as lease:
            assert lease is None  # the revision it compared against was not the stored one
        clock[0] += 10.0  # the lease stays unrenewed: it has lapsed for what is stored too
        async with ownership.hold("behind") as lease:
            assert lease is not None  # taken over (before: refused on every tick)
    finally:
        await bus.close()
