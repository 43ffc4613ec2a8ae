"""A lost lease closes the session's connection first, whatever its work still has to wind
down: the chaos test saw a connection outlive its lease by 4 s while a task's cleanup waited
on the bus (a quorum loss), and the next holder's connection made Telegram revoke the key
(AUTH_KEY_DUPLICATED)."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.mtproto.leases import LeaseValue, session_key
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import BatchPull
from switchboard.runtime.testing import eventually

from .mtproto_support import world


async def test_a_lost_lease_closes_the_connection_before_slow_cleanup(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus_back = asyncio.Event()
    close = BatchPull.close

    async def close_when_the_bus_is_back(self: BatchPull, *, nak_buffered: bool = False) -> None:
        await bus_back.wait()  # as a cleanup waits on the bus during an outage
        await close(self, nak_buffered=nak_buffered)

    async with world(nats_url, postgres_url) as w:
        _, keys = w.fake.add_user("+15550000031", first_name="Held", sessions=1)
        key = keys[0].key_id
        base = await w.gateway(instance_id="g1")
        await w.import_session(base, "held", keys[0].session)
        await eventually(lambda: w.connected(key), message="session connected")
        monkeypatch.setattr(BatchPull, "close", close_when_the_bus_is_back)
        try:
            # The lease taken from under the holder, as if it had lapsed in an outage.
            bus = await Bus.connect(nats_url, name="thief")
            try:
                kv = await bus.kv("leases")
                thief = LeaseValue(owner="thief", nonce="n", beat=0, ttl_s=30.0)
                await kv.put(session_key("held"), thief.encode())
            finally:
                await bus.close()

            async def closed() -> bool:
                return not await w.connected(key)

            await eventually(closed, timeout=30, message="connection closed, cleanup waiting")
        finally:
            bus_back.set()
            monkeypatch.setattr(BatchPull, "close", close)
        log = w.fake.connection_log(key_id=key)
        assert log["duplicates"] in ([], 0)
