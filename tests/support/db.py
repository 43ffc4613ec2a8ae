"""Database helpers for tests: extra databases and table checksums."""

from __future__ import annotations

import uuid

import asyncpg


async def create_database(server_url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


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
