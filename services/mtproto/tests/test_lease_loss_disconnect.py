"""A lost lease closes the session's connection first, whatever its work still has to wind
down: the chaos test saw a connection outlive its lease by 4 s while a task's cleanup waited
on the bus (a quorum loss), and the next holder's connection made Telegram revoke the key
(AUTH_KEY_DUPLICATED)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from nats.aio.msg import Msg

from switchboard.mtproto.leases import LeaseValue, session_key
from switchboard.mtproto.telethon_adapter import TelethonClient
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import BatchPull
from switchboard.runtime.testing import eventually

from .mtproto_support import World, world


async def test_a_lost_lease_closes_the_connection_before_slow_cleanup(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus_back = asyncio.Event()
    close = BatchPull.close

    async def close_when_the_bus_is_back(self: BatchPull, *, nak_buffered: bool = False) -> None:
        await bus_back.wait()  # as a cleanup waits on the bus during an outage
        await close(self, nak_buffered=nak_buffered)

    async with world(nats_url, postgres_url) as w:
        key = await held_session(w, "+15550000031")
        monkeypatch.setattr(BatchPull, "close", close_when_the_bus_is_back)
        try:
            await take_the_lease(nats_url, "held")

            async def closed() -> bool:
                return not await w.connected(key)

            await eventually(closed, timeout=30, message="connection closed, cleanup waiting")
        finally:
            bus_back.set()
            monkeypatch.setattr(BatchPull, "close", close)
        log = w.fake.connection_log(key_id=key)
        assert log["duplicates"] in ([], 0)


async def test_a_lease_lost_while_connecting_closes_the_connection_though_the_cancel_is_lost(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's ``asyncio.wait_for`` drops a cancellation that arrives as the call it
    waits on completes (python/cpython#86296), and the adapter wraps every Telethon call in
    it. The chaos test met it: a lease lapsed 25 ms after a connect, the cancel was lost,
    the runner went on serving under no lease until the next holder's connection made the
    fake answer AUTH_KEY_DUPLICATED, and the session was revoked."""
    connect = TelethonClient.connect
    armed = True

    async def connect_and_lose_the_cancel(self: TelethonClient) -> None:
        nonlocal armed
        await connect(self)
        if not armed:
            return
        armed = False
        await take_the_lease(nats_url, "held")
        # The cancel that follows is dropped, as wait_for drops it when the call is done.
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 30)

    monkeypatch.setattr(TelethonClient, "connect", connect_and_lose_the_cancel)
    async with world(nats_url, postgres_url) as w:
        key = await held_session(w, "+15550000032")

        async def closed() -> bool:
            return not armed and not await w.connected(key)

        await eventually(closed, timeout=20, message="connection closed though the cancel was lost")
        log = w.fake.connection_log(key_id=key)
        assert log["duplicates"] in ([], 0)


async def test_a_work_task_that_loses_its_cancel_at_a_drop_does_not_keep_the_session_down(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dropped connection winds the session's work down (every task cancelled, then
    awaited) before it reconnects. A task whose cancel is lost (``asyncio.wait_for`` in
    Python 3.11, ours or a library's: nats-py wraps every request in it) runs on: its loop
    pulls the session's commands for ever, the wind-down waited for it for ever, and the
    session stayed down while its lease was renewed, so no other instance took it either
    (as the chaos test's last check found a session, once, in CI)."""
    fetch = BatchPull.fetch
    dropping = asyncio.Event()
    waiting = asyncio.Event()
    lost = False

    async def fetch_losing_one_cancel(
        self: BatchPull, batch: int, timeout: float, at_most: int | None = None
    ) -> list[Msg]:
        nonlocal lost
        if dropping.is_set() and not lost:
            waiting.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost = True  # dropped, as wait_for drops one that races its call's answer
            raise TimeoutError
        return await fetch(self, batch, timeout, at_most)

    monkeypatch.setattr(BatchPull, "fetch", fetch_losing_one_cancel)
    async with world(nats_url, postgres_url) as w:
        key = await held_session(w, "+15550000033")
        connects = w.fake.connection_log(key_id=key)["keys"][0]["connects"]
        dropping.set()
        await asyncio.wait_for(waiting.wait(), 15)  # a work task is inside its pull
        w.fake.disconnect(key_id=key)

        async def back() -> bool:
            log = w.fake.connection_log(key_id=key)
            return bool(log["active"]) and log["keys"][0]["connects"] > connects

        await eventually(back, timeout=30, message="connected again after the drop")
        assert lost, "the work task lost a cancel"


async def held_session(w: World, phone: str) -> str:
    """A user's session imported as "held" on a new gateway and connected: its key id."""
    _, keys = w.fake.add_user(phone, first_name="Held", sessions=1)
    base = await w.gateway(instance_id="g1")
    await w.import_session(base, "held", keys[0].session)
    await eventually(lambda: w.connected(keys[0].key_id), message="session connected")
    return str(keys[0].key_id)


async def take_the_lease(nats_url: str, session_id: str) -> None:
    """The lease taken from under the holder, as if it had lapsed in an outage."""
    bus = await Bus.connect(nats_url, name="thief")
    try:
        kv = await bus.kv("leases")
        thief = LeaseValue(owner="thief", nonce="n", beat=0, ttl_s=30.0)
        await kv.put(session_key(session_id), thief.encode())
    finally:
        await bus.close()
