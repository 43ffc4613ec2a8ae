"""Rebuild-and-swap, written once: replay the streams into fresh tables and swap them in.

The API keeps serving the live tables while the replay runs into a schema of its own
(``<schema>_rebuild_<stamp>``), migrated like the live one. Indexes no projector statement
needs (``deferred_indexes``: full text, list orderings) are dropped from the fresh tables and
created once the replay has caught up, from the very definitions the migrations made. Then,
in one transaction holding the live checkpoints' table lock (so live projectors cannot
commit), the replay catches up to the live positions and every table moves: live tables to
``<schema>_old_<stamp>``, fresh ones into the live schema. Live projectors then find the
checkpoint somewhere they did not leave it, stop, and resume from it (``Projection._save``).

Tables named in ``kept`` are not replaced (a ledger of side effects already decided: the
replay writes to the live one). Crashes: every batch commits its rows with its checkpoint, so
an abandoned replay is consistent at its last commit; a new rebuild starts over in a schema
of its own, and nothing is swapped in before the replay has caught up.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg

from switchboard.runtime import identity, pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.db import Conn, create_pool, load_migrations, migrate
from switchboard.runtime.projection import Projection, ensure_checkpoints
from switchboard.runtime.service import connect_bus
from switchboard.runtime.settings import ConfigError, DatabaseSettings, load_settings

D = TypeVar("D", bound=DatabaseSettings)

# build(fresh schema, bus, pool) -> the service's projections, writing into that schema.
BuildProjections = Callable[[str, Bus, asyncpg.Pool], Sequence[Projection]]


@dataclass(frozen=True)
class RebuildPlan:
    """What a service rebuilds: its schema, its migrations and its projections."""

    schema: str
    migrations_package: str  # e.g. "switchboard.crm"
    build: BuildProjections
    pool_size: int  # connections of the fresh schema's pool
    deferred_indexes: tuple[str, ...] = ()
    kept: frozenset[str] = frozenset()
    # what the projections read from the bus before they replay (analytics: its pixels)
    before: Callable[[Bus], Awaitable[None]] | None = None
    catch_up_timeout_s: float = 3600.0
    swap_timeout_s: float = 60.0  # to reach the live positions while they are locked


@dataclass
class RebuildReport:
    schema_old: str | None
    positions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


async def tables(conn: Conn, schema: str, kept: frozenset[str] = frozenset()) -> list[str]:
    """The tables of ``schema`` that a swap moves."""
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema
    )
    return [r["tablename"] for r in rows if r["tablename"] not in kept]


async def defer_indexes(conn: Conn, schema: str, names: Sequence[str]) -> list[str]:
    """Drop the named indexes of ``schema``; returns their definitions, to create later."""
    rows = await conn.fetch(
        """SELECT indexname, indexdef FROM pg_indexes
           WHERE schemaname = $1 AND indexname = ANY($2::text[]) ORDER BY indexname""",
        schema,
        list(names),
    )
    for r in rows:
        await conn.execute(f'DROP INDEX "{schema}"."{r["indexname"]}"')
    return [r["indexdef"] for r in rows]


async def rebuild_service(
    plan: RebuildPlan,
    settings: DatabaseSettings,
    service: str,
    *,
    keep_old: bool = False,
    log: Callable[[str], None] = print,
) -> RebuildReport:
    """``switchboard <service> rebuild``: with the service's own settings (the identity
    pepper the live projections hash with, its NATS credentials), rebuild and swap."""
    identity.configure(settings.identity_pepper.get_secret_value())
    bus = await connect_bus(settings, f"{service}-rebuild")
    try:
        async with pii.using(bus):  # sealed personal data opens with its keys
            return await rebuild_and_swap(
                plan, bus=bus, database_url=settings.database_url, keep_old=keep_old, log=log
            )
    finally:
        await bus.close()


def rebuild_main(
    argv: list[str] | None,
    *,
    service: str,
    description: str | None,
    settings: type[D],
    plan: Callable[[D], RebuildPlan],
    summary: str,
    before: Callable[[], None] = lambda: None,
) -> int:
    """``switchboard <service> rebuild [--keep-old]``, the command line of every service that
    rebuilds: a wrong setting is one sentence and exit status 2; ``before`` runs once the
    settings are good, just before the replay."""
    parser = argparse.ArgumentParser(prog=f"switchboard {service}", description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    rb = sub.add_parser("rebuild", help=summary)
    rb.add_argument("--keep-old", action="store_true", help="keep the replaced tables")
    args = parser.parse_args(argv)
    try:
        loaded = load_settings(settings)
    except ConfigError as exc:
        print(exc)
        return 2
    before()
    asyncio.run(rebuild_service(plan(loaded), loaded, service, keep_old=args.keep_old))
    return 0


async def rebuild_and_swap(
    plan: RebuildPlan,
    *,
    bus: Bus,
    database_url: str,
    keep_old: bool = False,
    log: Callable[[str], None] = print,
) -> RebuildReport:
    """Replay ``plan``'s projections into a fresh schema and swap it in (module docstring)."""
    started = time.monotonic()
    stamp = time.strftime("%Y%m%d%H%M%S")
    live_schema = plan.schema
    fresh, old = f"{live_schema}_rebuild_{stamp}", f"{live_schema}_old_{stamp}"
    admin = await create_pool(database_url, 2)
    pool = await create_pool(database_url, plan.pool_size, schema=fresh)
    try:
        migrations = load_migrations(plan.migrations_package)
        await migrate(admin, live_schema, migrations)  # the live schema, if nothing ran yet
        await migrate(admin, fresh, migrations)
        async with admin.acquire() as conn:
            await ensure_checkpoints(conn, live_schema)  # the table the swap locks
            deferred = await defer_indexes(conn, fresh, plan.deferred_indexes)
        if plan.before is not None:
            await plan.before(bus)
        projections = list(plan.build(fresh, bus, pool))
        tasks = [asyncio.create_task(p.run()) for p in projections]
        try:
            for p in projections:
                async with asyncio.timeout(plan.catch_up_timeout_s):
                    await p.caught_up.wait()
                log(f"replayed {p.name} up to {p.position}")
            if deferred:
                indexing = time.monotonic()
                async with admin.acquire() as conn:
                    for definition in deferred:
                        await conn.execute(definition)
                took = time.monotonic() - indexing
                log(f"created {len(deferred)} deferred indexes in {took:.1f} s")
            async with admin.acquire() as conn, conn.transaction():
                await _swap(conn, plan, projections, tasks, fresh=fresh, old=old)
        finally:
            for p in projections:
                p.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not keep_old:
            async with admin.acquire() as conn:
                await conn.execute(f'DROP SCHEMA "{old}" CASCADE')
        report = RebuildReport(
            schema_old=old if keep_old else None,
            positions={p.name: p.position for p in projections},
            seconds=time.monotonic() - started,
        )
        log(f"swapped in fresh {live_schema} tables in {report.seconds:.1f} s: {report.positions}")
        return report
    finally:
        await pool.close()
        await admin.close()


async def _swap(
    conn: Conn,
    plan: RebuildPlan,
    projections: Sequence[Projection],
    tasks: Sequence[asyncio.Task[None]],
    *,
    fresh: str,
    old: str,
) -> None:
    """Inside the swap's transaction: lock the live checkpoints, let the replay reach them,
    stop it, and trade the tables' places."""
    live_schema = plan.schema
    await conn.execute(f"LOCK TABLE {live_schema}.checkpoints IN ACCESS EXCLUSIVE MODE")
    live = {
        r["projection"]: int(r["seq"])
        for r in await conn.fetch(f"SELECT projection, seq FROM {live_schema}.checkpoints")
    }
    deadline = time.monotonic() + plan.swap_timeout_s
    while any(p.position < live.get(p.name, 0) for p in projections):
        if time.monotonic() > deadline:
            raise TimeoutError("the replay did not reach the live positions")
        await asyncio.sleep(0.05)
    for p in projections:
        p.stop.set()
    await asyncio.gather(*tasks)
    await conn.execute(f'CREATE SCHEMA "{old}"')
    for table in await tables(conn, live_schema, plan.kept):
        await conn.execute(f'ALTER TABLE {live_schema}."{table}" SET SCHEMA "{old}"')
    for table in await tables(conn, fresh, plan.kept):
        await conn.execute(f'ALTER TABLE "{fresh}"."{table}" SET SCHEMA {live_schema}')
    # What is left of the fresh schema are its unused copies of the kept tables.
    await conn.execute(f'DROP SCHEMA "{fresh}" CASCADE')
