"""``switchboard analytics rebuild``: replay the streams into fresh rollups and swap them in.

As in the CRM: the API keeps serving the live tables while the replay runs into a schema
of its own; then, holding the live checkpoints' table lock (so live projectors cannot
commit), the replay catches up to the live positions and the tables trade places. Live
projectors find their checkpoint moved, stop, and resume from it.

The conversion ledger is the one table that is not replaced: it records side effects
already decided. The replay writes to the live ledger, where every conversion decided
before is already present and is not decided again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard.analytics.app import PROJECTORS, SCHEMA, build_projection
from switchboard.analytics.context import Context, ConversionRules
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.runtime import identity, pii
from switchboard.runtime.db import Conn, create_pool, load_migrations, migrate
from switchboard.runtime.service import connect_bus

KEPT = frozenset({"conversion_ledger"})


@dataclass
class RebuildReport:
    schema_old: str | None
    positions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


async def _tables(conn: Conn, schema: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema
    )
    return [r["tablename"] for r in rows if r["tablename"] not in KEPT]


async def rebuild(
    settings: AnalyticsSettings, *, keep_old: bool = False, log: Callable[[str], None] = print
) -> RebuildReport:
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d%H%M%S")
    fresh, old = f"{SCHEMA}_rebuild_{stamp}", f"{SCHEMA}_old_{stamp}"
    identity.configure(settings.identity_pepper.get_secret_value())  # the keys live ones use
    bus = await connect_bus(settings, "analytics-rebuild")
    admin = await create_pool(settings.database_url, 2)
    # Each projection holds one connection for its leader lock and uses another to apply.
    pool = await create_pool(settings.database_url, 2 * len(PROJECTORS) + 1, schema=fresh)
    ctx = Context(rules=ConversionRules.from_settings(settings), observe=False)
    try:
        async with pii.using(bus):  # sealed personal data opens with its keys
            migrations = load_migrations("switchboard.analytics")
            await migrate(admin, SCHEMA, migrations)  # the live ledger must exist
            await migrate(admin, fresh, migrations)
            projections = [
                build_projection(
                    m,
                    ctx,
                    schema=fresh,
                    bus=bus,
                    pool=pool,
                    batch=max(settings.projection_batch, 1000),
                )
                for m in PROJECTORS
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
                await conn.execute(f'DROP SCHEMA "{fresh}" CASCADE')
            if not keep_old:
                async with admin.acquire() as conn:
                    await conn.execute(f'DROP SCHEMA "{old}" CASCADE')
            report = RebuildReport(
                schema_old=old if keep_old else None,
                positions={p.name: p.position for p in projections},
                seconds=time.monotonic() - started,
            )
            log(f"swapped in fresh rollups in {report.seconds:.1f} s: {report.positions}")
            return report
    finally:
        await pool.close()
        await admin.close()
        await bus.close()
