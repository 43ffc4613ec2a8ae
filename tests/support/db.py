"""Database helpers for tests: extra databases (the fixtures' own ``create_database``), table
checksums and projections' progress."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from switchboard.runtime.bus import Bus
from switchboard.runtime.testing.fixtures import create_database

__all__ = [
    "assert_rebuilt_as_live",
    "create_database",
    "projected",
    "schema_checksums",
    "schema_tables",
    "table_checksum",
]


async def table_checksum(url: str, table: str, order_by: str) -> tuple[int, str]:
    """(row count, md5 over every column of every row in a fixed order)."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY {order_by}), ''))"
            f" AS sum FROM {table} t"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["n"]), str(row["sum"])


# A projection's checkpoint, as (schema, projection, stream): the projection is caught up
# when its checkpoint has reached the last sequence of its stream.
Checkpoint = tuple[str, str, str]


async def projected(nats: Bus | str, db_url: str, checkpoints: Iterable[Checkpoint]) -> bool:
    """True once every checkpoint has reached its stream's last sequence, read from outside
    the services (on ``nats``: a bus, or a URL to probe from); False while the database or a
    projection's schema is not there yet."""
    bus = nats if isinstance(nats, Bus) else await Bus.connect(nats, name="probe")
    try:
        conn = await asyncpg.connect(db_url)
        try:
            for schema, projection, stream in checkpoints:
                last = (await bus.js.stream_info(stream)).state.last_seq
                seq = await conn.fetchval(
                    f"SELECT seq FROM {schema}.checkpoints WHERE projection = $1", projection
                )
                if (seq or 0) < last:
                    return False
            return True
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError):
        return False
    finally:
        if bus is not nats:
            await bus.close()


async def schema_tables(conn: asyncpg.Connection, schema: str) -> list[str]:
    """The names of ``schema``'s tables, in order."""
    rows = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema
    )
    return [r["tablename"] for r in rows]


# Tables a rebuild writes with wall-clock times: bookkeeping, not projected data.
BOOKKEEPING = ("checkpoints", "schema_migrations")


async def schema_checksums(db_url: str, schema: str) -> dict[str, tuple[int, str]]:
    """:func:`table_checksum` of each table of ``schema`` but the bookkeeping."""
    conn = await asyncpg.connect(db_url)
    try:
        tables = await schema_tables(conn, schema)
    finally:
        await conn.close()
    return {
        t: await table_checksum(db_url, f"{schema}.{t}", "t::text")
        for t in tables
        if t not in BOOKKEEPING
    }


async def assert_rebuilt_as_live(db_url: str, schema: str, old: str) -> tuple[list[str], int]:
    """Every table of ``old`` (the live schema a rebuild swapped out and kept) equals the one
    rebuilt into ``schema``, row for row, byte for byte; returns the tables compared and
    their rows."""
    live = await schema_checksums(db_url, old)
    for table, checksum in live.items():
        assert await table_checksum(db_url, f"{schema}.{table}", "t::text") == checksum, table
    return list(live), sum(rows for rows, _ in live.values())
