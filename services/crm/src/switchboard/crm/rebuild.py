"""``switchboard crm rebuild``: replay the streams into fresh tables and swap them in.

The API keeps serving the live tables while the replay runs into a schema of its own, built
for bulk loading: the indexes no projector statement needs (each projector's
``DEFERRED_INDEXES``: full text, list orderings) are dropped from the fresh tables and
created once the replay has caught up, from the very definitions the migrations made.
Then, in one transaction holding the live checkpoints' table lock (so live projectors
cannot commit), the replay catches up to the live positions and every table moves: live
tables to ``crm_old_<stamp>``, fresh ones into ``crm``. Live projectors then find the
checkpoint somewhere they did not leave it, stop, and resume from it (see Projection._save).

Batches are larger than live ones (``rebuild_batch``): a batch rewrites the summary of
every conversation it touches, so fewer batches write less.

Crashes: every batch commits its rows with its checkpoint, as live, so a replay whose
process or database dies is consistent at its last commit. A new ``rebuild`` starts over
in a schema of its own (delete the abandoned ``crm_rebuild_<stamp>`` at leisure); nothing
is swapped in before the replay has caught up and its indexes exist. Commits stay
synchronous: unlogged tables or ``synchronous_commit = off`` would only save the WAL
flush of one commit per batch (a few dozen per 100k events), measured as noise, and
unlogged tables would need a full rewrite before the swap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard.crm.app import PROJECTIONS, SCHEMA, build_projection
from switchboard.crm.settings import CrmSettings
from switchboard.runtime import identity, pii
from switchboard.runtime.db import Conn, create_pool, load_migrations, migrate
from switchboard.runtime.projection import ensure_checkpoints
from switchboard.runtime.service import connect_bus


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


async def defer_indexes(conn: Conn, schema: str, names: list[str]) -> list[str]:
    """Drop the named indexes of ``schema``; returns their definitions, to create later."""
    rows = await conn.fetch(
        """SELECT indexname, indexdef FROM pg_indexes
           WHERE schemaname = $1 AND indexname = ANY($2::text[]) ORDER BY indexname""",
        schema,
        names,
    )
    for r in rows:
        await conn.execute(f'DROP INDEX "{schema}"."{r["indexname"]}"')
    return [r["indexdef"] for r in rows]


def deferred_index_names() -> list[str]:
    return [name for m in PROJECTIONS for name in getattr(m, "DEFERRED_INDEXES", ())]


async def rebuild(
    settings: CrmSettings, *, keep_old: bool = False, log: Callable[[str], None] = print
) -> RebuildReport:
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d%H%M%S")
    fresh, old = f"{SCHEMA}_rebuild_{stamp}", f"{SCHEMA}_old_{stamp}"
    identity.configure(settings.identity_pepper.get_secret_value())  # the hashes live ones use
    bus = await connect_bus(settings, "crm-rebuild")  # with the service's NATS credentials
    admin = await create_pool(settings.database_url, 2)
    pool = await create_pool(settings.database_url, 4, schema=fresh)
    try:
        async with pii.using(bus):  # sealed personal data opens with its keys
            migrations = load_migrations("switchboard.crm")
            await migrate(admin, SCHEMA, migrations)  # the live schema, if nothing ran yet
            await migrate(admin, fresh, migrations)
            async with admin.acquire() as conn:
                await ensure_checkpoints(conn, SCHEMA)
                deferred = await defer_indexes(conn, fresh, deferred_index_names())
            projections = [
                build_projection(m, schema=fresh, bus=bus, pool=pool, batch=settings.rebuild_batch)
                for m in PROJECTIONS
            ]
            tasks = [asyncio.create_task(p.run()) for p in projections]
            for p in projections:
                await asyncio.wait_for(p.caught_up.wait(), 3600)
                log(f"replayed {p.name} up to {p.position}")
            indexing = time.monotonic()
            async with admin.acquire() as conn:
                for definition in deferred:
                    await conn.execute(definition)
            log(f"created {len(deferred)} deferred indexes in {time.monotonic() - indexing:.1f} s")
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
