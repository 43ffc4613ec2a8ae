"""The projection-behind gauge the alerts read: how many events the leading projector has
not applied yet, zero once idle, and gone when it stops leading (no stale backlog left
behind to page anyone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import asyncpg
import pytest
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from switchboard.runtime.bus import Bus
from switchboard.runtime.db import Conn, create_pool
from switchboard.runtime.projection import Projection
from switchboard.runtime.testing import eventually

GAUGE = "switchboard_projection_behind_messages"


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_url, name="test")
    await bus.provision()
    yield bus
    await bus.close()


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_url, 10, schema="v")
    async with pool.acquire() as conn:
        await conn.execute("CREATE SCHEMA v")
    yield pool
    await pool.close()


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

    proj = Projection(
        name="vitals_seen",
        schema="v",
        stream="CONV",
        filter_subjects=("conv.>",),
        apply=apply,
        bus=bus,
        pool=pool,
        batch=5,
        prefetch=0,
    )
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
