"""``switchboard crm rebuild``: replay the streams into fresh tables and swap them in.

The API keeps serving the live tables while the replay runs into a schema of its own.
Then, in one transaction holding the live checkpoints' table lock (so live projectors
cannot commit), the replay catches up to the live positions and every table moves: live
tables to ``crm_old_<stamp>``, fresh ones into ``crm``. Live projectors then find the
checkpoint somewhere they did not leave it, stop, and resume from it (see Projection._save).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard.crm.app import PROJECTIONS, SCHEMA, build_projection
from switchboard.crm.settings import CrmSettings
from switchboard.runtime.bus import Bus
from switchboard.runtime.db import Conn, create_pool, load_migrations, migrate


@dataclass
class RebuildReport:
    schema_old: str | None
    positions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    events: int = 0


async def _tables(conn: Conn, schema: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema
    )
    return [r["tablename"] for r in rows]


async def rebuild(
    settings: CrmSettings, *, keep_old: bool = False, log: Callable[[str], None] = print
) -> RebuildReport:
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d%H%M%S")
    fresh, old = f"{SCHEMA}_rebuild_{stamp}", f"{SCHEMA}_old_{stamp}"
    bus = await Bus.connect(settings.nats_url, name="crm-rebuild")
    admin = await create_pool(settings.database_url, 2)
    pool = await create_pool(settings.database_url, 4, schema=fresh)
    try:
        await migrate(admin, fresh, load_migrations("switchboard.crm"))
        projections = [
            build_projection(
                m, schema=fresh, bus=bus, pool=pool, batch=max(settings.projection_batch, 1000)
            )
            for m in PROJECTIONS
        ]
        tasks = [asyncio.create_task(p.run()) for p in projections]
        for p in projections:
            await asyncio.wait_for(p.caught_up.wait(), 3600)
            log(f"replayed {p.name} up to {p.position}")
        async with admin.acquire() as conn, conn.transaction():
            await conn.execute(f"LOCK TABLE {SCHEMA}.checkpoints IN ACCESS EXCLUSIVE MODE")
            live = {
                r["projection"]: int(r["seq"])
                for r in await conn.fetch(f"SELECT projection, seq FROM {SCHEMA}.checkpoints")
            }
            deadline = time.monotonic() + 60
            while any(p.position < live.get(p.name, 0) for p in projections):
                if time.monotonic() > deadline:
                    raise TimeoutError("the replay did not reach the live positions")
                await asyncio.sleep(0.05)
            for p in projections:
                p.stop.set()
            await asyncio.gather(*tasks)
            await conn.execute(f'CREATE SCHEMA "{old}"')
            for table in await _tables(conn, SCHEMA):
                await conn.execute(f'ALTER TABLE {SCHEMA}."{table}" SET SCHEMA "{old}"')
            for table in await _tables(conn, fresh):
                await conn.execute(f'ALTER TABLE "{fresh}"."{table}" SET SCHEMA {SCHEMA}')
            await conn.execute(f'DROP SCHEMA "{fresh}"')
        if not keep_old:
            async with admin.acquire() as conn:
                await conn.execute(f'DROP SCHEMA "{old}" CASCADE')
        report = RebuildReport(
            schema_old=old if keep_old else None,
            positions={p.name: p.position for p in projections},
            seconds=time.monotonic() - started,
        )
        log(f"swapped in fresh tables in {report.seconds:.1f} s: {report.positions}")
        return report
    finally:
        await pool.close()
        await admin.close()
        await bus.close()
