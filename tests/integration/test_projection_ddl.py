"""Projections of one schema starting at the same moment all get their checkpoint table.

Found by the analytics service: four projections starting together raced on CREATE TABLE
IF NOT EXISTS (a unique violation in pg_type) and the losers restarted a second later."""

from __future__ import annotations

import asyncio

import asyncpg

from switchboard.runtime.bus import Bus
from switchboard.runtime.db import create_pool
from switchboard.runtime.projection import Projection


async def _nothing(conn: object, batch: object) -> None:
    return None


async def test_concurrent_first_checkpoints_do_not_collide(
    nats_url: str, postgres_url: str
) -> None:
    bus = await Bus.connect(nats_url, name="ddl")
    pool = await create_pool(postgres_url, 12)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE SCHEMA racing")
        projections = [
            Projection(
                name=f"p{i}",
                schema="racing",
                stream="CONV",
                filter_subjects=("conv.>",),
                apply=_nothing,
                bus=bus,
                pool=pool,
            )
            for i in range(12)
        ]

        async def first(p: Projection) -> int:
            async with pool.acquire() as conn:
                return await p.checkpoint(conn)

        for _ in range(5):  # a fresh table each round, twelve first checkpoints at once
            async with pool.acquire() as conn:
                await conn.execute("DROP TABLE IF EXISTS racing.checkpoints")
            assert await asyncio.gather(*(first(p) for p in projections)) == [0] * 12
    finally:
        await pool.close()
        await bus.close()
        conn = await asyncpg.connect(postgres_url)
        await conn.execute("DROP SCHEMA IF EXISTS racing CASCADE")
        await conn.close()
