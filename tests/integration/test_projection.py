"""Checkpointed projections on real JetStream and Postgres: exactly-once effect, poison
events to the DLQ without blocking, a single leader among competing instances, and the
projection-behind gauge the alerts read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from switchboard.runtime.bus import Bus
from switchboard.runtime.db import Conn, create_pool
from switchboard.runtime.dlq import list_dead_letters
from switchboard.runtime.embedded import EmbeddedPostgres
from switchboard.runtime.projection import Projection
from switchboard.runtime.testing import eventually


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
        # outages are waited out however long they last; tests shrink the waits
        infra_backoff_s=0.05,
        infra_backoff_cap_s=0.5,
    )


async def _count(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM seen"))


async def test_the_leaders_session_applies_every_batch(
    bus: Bus, pool: asyncpg.Pool, postgres_url: str
) -> None:
    # One connection in all: the one holding the leader's lock checkpoints, applies the
    # batches, retries the poison one by one and moves past it. A connection taken from
    # the pool per batch waited for ever here (and elsewhere cost a reset per batch).
    for i, body in enumerate(["a", "b", "poison", "c", "d", "e", "f"]):
        await bus.publish_raw("conv.test.v1.x", body.encode(), {"Nats-Msg-Id": f"s{i}"})
    single = await create_pool(postgres_url, 1, schema="p")
    try:
        proj = _projection(bus, single, batch=3)
        task = asyncio.create_task(proj.run())
        try:
            await asyncio.wait_for(proj.caught_up.wait(), 20)
        finally:
            proj.stop.set()
            await task
        assert proj.position == 7
    finally:
        await single.close()
    async with pool.acquire() as conn:
        assert [r["body"] for r in await conn.fetch("SELECT body FROM seen ORDER BY seq")] == [
            *"abcdef"
        ]


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


async def test_a_consumer_deleted_under_it_is_recreated_at_the_checkpoint(
    bus: Bus, pool: asyncpg.Pool
) -> None:
    """The ephemeral consumer can vanish (a NATS restart loses it, an operator deletes it):
    the server answers the next pull with a status, and the projection resubscribes from
    its own position, applying nothing twice and skipping nothing."""
    for i in range(40):
        await bus.publish_raw("conv.test.v1.x", f"e{i}".encode(), {"Nats-Msg-Id": f"d{i}"})
    proj = _projection(bus, pool, batch=7)
    task = asyncio.create_task(proj.run())
    await eventually(lambda: _has(pool, 40), timeout=30, message="first events")
    for info in await bus.js.consumers_info("CONV"):
        await bus.js.delete_consumer("CONV", info.name)
    for i in range(40, 90):
        await bus.publish_raw("conv.test.v1.x", f"e{i}".encode(), {"Nats-Msg-Id": f"d{i}"})
    await eventually(lambda: _has(pool, 90), timeout=30, message="events after the deletion")
    proj.stop.set()
    await task
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT seq FROM p.checkpoints WHERE projection='seen'") == 90
    info = await bus.js.stream_info("CONV")
    assert info.state.consumer_count == 0  # the projection cleaned up after itself


async def test_postgres_restarts_under_traffic_lose_and_repeat_nothing(
    bus: Bus, tmp_path: Path
) -> None:
    """Postgres restarted three times (fast shutdown: in-flight queries get a FATAL, then
    the connections drop) while events keep arriving: the projection resumes on its own
    each time, and ``seen`` ends with every event exactly once (a second application would
    violate its primary key; a skipped one would leave a gap)."""
    pg = EmbeddedPostgres(tmp_path / "pg").start()
    pool = await create_pool(pg.url, 10, schema="p")
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                "CREATE SCHEMA p; CREATE TABLE p.seen (seq bigint PRIMARY KEY, body text)"
            )
        proj = _projection(bus, pool, batch=50)
        proj.apply = _slow_apply  # so that a restart lands on a query in flight
        task = asyncio.create_task(proj.run())
        sent = 0

        async def publish(n: int) -> None:
            nonlocal sent
            for _ in range(n):
                await bus.publish_raw(
                    "conv.test.v1.x", f"e{sent}".encode(), {"Nats-Msg-Id": f"r{sent}"}
                )
                sent += 1

        for _round in range(3):
            await publish(600)
            target = sent - 400
            await eventually(lambda t=target: _at_least(pool, t), timeout=60, message="progress")
            pg.stop()
            await publish(200)  # while Postgres is down
            pg.start()
        await publish(100)
        total = sent
        await eventually(lambda: _at_least(pool, total), timeout=60, message="resumed")
        proj.stop.set()
        await asyncio.wait_for(task, 30)
        async with pool.acquire() as conn:
            seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM p.seen ORDER BY seq")]
        assert seqs == list(range(1, total + 1))
        assert await list_dead_letters(bus) == []
    finally:
        await pool.close()
        pg.stop()


async def _slow_apply(conn: Conn, msgs: Sequence[Msg]) -> None:
    await _apply(conn, msgs)
    await conn.execute("SELECT pg_sleep(0.02)")


async def _at_least(pool: asyncpg.Pool, n: int) -> bool:
    try:
        return await _count(pool) >= n
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


async def test_a_broken_connection_is_an_interruption_not_a_poison_event(
    bus: Bus, pool: asyncpg.Pool
) -> None:
    """After a Postgres restart asyncpg can hand out a connection whose protocol is stuck
    ("cannot switch to state 15; another operation is in progress", an InternalClientError)
    or answer with the server's shutdown FATAL. Those say nothing about the event: it must
    be applied once the database is back, never dead-lettered."""
    for i in range(10):
        await bus.publish_raw("conv.test.v1.x", f"e{i}".encode(), {"Nats-Msg-Id": f"b{i}"})
    failures = [
        asyncpg.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    ] * 3

    async def flaky(conn: Conn, msgs: Sequence[Msg]) -> None:
        if any(m.data == b"e4" for m in msgs) and failures:
            raise failures.pop(0)
        await _apply(conn, msgs)

    proj = _projection(bus, pool, batch=3)
    proj.apply = flaky
    task = asyncio.create_task(proj.run())
    try:
        await eventually(lambda: _has(pool, 10), timeout=30, message="every event applied")
    finally:
        proj.stop.set()
        await asyncio.wait_for(task, 30)
    assert failures == []
    assert await list_dead_letters(bus) == []


# The projection-behind gauge: how many events the leading projector has not applied yet,
# zero once idle, and gone when it stops leading (no stale backlog left behind to page anyone).
GAUGE = "switchboard_projection_behind_messages"


def _behind() -> float | None:
    return REGISTRY.get_sample_value(GAUGE, {"projection": "vitals_seen"})


def _behind_is(value: float) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return _behind() == value

    return check


async def test_behind_counts_down_to_zero_and_leaves_with_the_leader(
    bus: Bus, pool: asyncpg.Pool
) -> None:
    for i in range(40):
        await bus.publish_raw("conv.test.v1.x", b"e", {"Nats-Msg-Id": f"v{i}"})
    batches: list[int] = []
    release = asyncio.Event()

    async def apply(conn: Conn, msgs: Sequence[Msg]) -> None:
        batches.append(len(msgs))
        if len(batches) > 1:
            await release.wait()  # hold the second batch: the first one is applied

    proj = replace(_projection(bus, pool), name="vitals_seen", apply=apply, prefetch=0)
    task = asyncio.create_task(proj.run())
    try:
        await eventually(_behind_is(35), timeout=20, message="35 left after 5")
        release.set()
        await asyncio.wait_for(proj.caught_up.wait(), 20)
        await eventually(_behind_is(0), timeout=20, message="nothing left")
    finally:
        release.set()
        proj.stop.set()
        await task
    assert _behind() is None
