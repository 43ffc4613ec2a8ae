"""Checkpointed projections on real JetStream and Postgres: exactly-once effect, poison
events to the DLQ without blocking, and a single leader among competing instances."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from nats.aio.msg import Msg

from switchboard.runtime.bus import Bus
from switchboard.runtime.db import Conn, create_pool
from switchboard.runtime.dlq import list_dead_letters
from switchboard.runtime.projection import Projection
from switchboard.runtime.testing import eventually


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_url, name="test")
    await bus.provision()
    yield bus
    await bus.close()


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_url, 10, schema="p")
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE SCHEMA p; CREATE TABLE p.seen (seq bigint PRIMARY KEY, body text)"
        )
    yield pool
    await pool.close()


async def _apply(conn: Conn, msgs: Sequence[Msg]) -> None:
    for msg in msgs:
        if msg.data == b"poison":
            raise ValueError("poison body")
        # no ON CONFLICT: a second application of the same event would fail loudly
        await conn.execute(
            "INSERT INTO seen VALUES ($1, $2)", msg.metadata.sequence.stream, msg.data.decode()
        )


def _projection(bus: Bus, pool: asyncpg.Pool, batch: int = 5) -> Projection:
    return Projection(
        name="seen",
        schema="p",
        stream="CONV",
        filter_subjects=("conv.>",),
        apply=_apply,
        bus=bus,
        pool=pool,
        batch=batch,
    )


async def _count(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM seen"))


async def test_poison_goes_to_dlq_and_the_rest_applies_exactly_once(
    bus: Bus, pool: asyncpg.Pool
) -> None:
    bodies = [f"e{i}" for i in range(30)]
    bodies.insert(12, "poison")
    for i, body in enumerate(bodies):
        await bus.publish_raw("conv.test.v1.x", body.encode(), {"Nats-Msg-Id": f"p{i}"})
    proj = _projection(bus, pool)
    task = asyncio.create_task(proj.run())
    await asyncio.wait_for(proj.caught_up.wait(), 20)
    proj.stop.set()
    await task
    assert await _count(pool) == 30
    letters = await list_dead_letters(bus)
    assert [(lt.body, lt.reason, lt.consumer) for lt in letters] == [
        (b"poison", "ValueError: poison body", "seen")
    ]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT seq FROM p.checkpoints WHERE projection='seen'") == 31

    # restarting resumes after the checkpoint: nothing applied twice, new events applied
    for i in range(5):
        await bus.publish_raw("conv.test.v1.x", f"late{i}".encode(), {"Nats-Msg-Id": f"l{i}"})
    again = _projection(bus, pool)
    task = asyncio.create_task(again.run())
    await eventually(lambda: _has(pool, 35), message="late events")
    again.stop.set()
    await task


async def _has(pool: asyncpg.Pool, n: int) -> bool:
    return await _count(pool) == n


async def test_competing_instances_apply_each_event_once(bus: Bus, pool: asyncpg.Pool) -> None:
    for i in range(200):
        await bus.publish_raw("conv.test.v1.x", f"e{i}".encode(), {"Nats-Msg-Id": f"c{i}"})
    instances = [_projection(bus, pool, batch=3) for _ in range(3)]
    tasks = [asyncio.create_task(p.run()) for p in instances]
    await eventually(lambda: _has(pool, 200), timeout=30, message="all events")
    # stop the leader: another takes over and applies what comes next
    leader = next(p for p in instances if p.position > 0)
    leader.stop.set()
    await tasks[instances.index(leader)]
    for i in range(200, 230):
        await bus.publish_raw("conv.test.v1.x", f"e{i}".encode(), {"Nats-Msg-Id": f"c{i}"})
    await eventually(lambda: _has(pool, 230), timeout=30, message="takeover")
    for p in instances:
        p.stop.set()
    await asyncio.gather(*tasks)
    assert len([p for p in instances if p.position > 0]) >= 2
    assert await list_dead_letters(bus) == []


async def test_idle_polling_is_quiet_and_keeps_one_consumer(bus: Bus, pool: asyncpg.Pool) -> None:
    """An empty stream is the normal case, not an error: no resubscription, no back-off.

    nats-py signals "nothing yet" with asyncio's TimeoutError as well as its own; treating
    the former as a failure recreated the consumer on every idle poll (regression test).
    """
    proj = _projection(bus, pool)
    task = asyncio.create_task(proj.run())

    async def polled_idle() -> bool:
        return proj.idle_polls >= 3

    await eventually(polled_idle, timeout=15, message="three idle polls")
    info = await bus.js.stream_info("CONV")
    assert info.state.consumer_count == 1
    assert proj.caught_up.is_set()
    proj.stop.set()
    await task
