"""Postgres: pools and plain-SQL migrations applied at start-up.

A small runner rather than a migration framework: migrations are plain ``NNN_name.sql``
files shipped inside each service package, applied in order under an advisory lock (so
concurrent instances never race) and recorded with a checksum (an edited, already-applied
migration stops start-up instead of silently diverging).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import asyncpg.pool

from switchboard.runtime.errors import SwitchboardRuntimeError
from switchboard.runtime.logging import get_logger

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

log = get_logger(__name__)
_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


D = TypeVar("D", bound="DataclassInstance")

# What handlers receive: a pooled connection or a plain one (asyncpg types them apart).
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class MigrationError(SwitchboardRuntimeError, RuntimeError):
    """An applied migration was changed, or migrations are out of order."""


async def create_pool(url: str, size: int = 10, schema: str | None = None) -> asyncpg.Pool:
    """A pool whose connections fail fast (the service reports not-ready instead of hanging)
    and resolve unqualified names in the service's own schema."""
    settings = {"search_path": f'"{schema}", public'} if schema else None
    pool = await asyncpg.create_pool(
        url, min_size=1, max_size=size, timeout=5, command_timeout=60, server_settings=settings
    )
    assert pool is not None
    return pool


def load_migrations(package: str, folder: str = "migrations") -> list[tuple[str, str]]:
    """(filename, sql) pairs of a package's migrations folder, in order."""
    root = resources.files(package) / folder
    found = []
    for entry in root.iterdir():
        if entry.name.endswith(".sql"):
            if not _NAME.match(entry.name):
                raise MigrationError(f"migration {entry.name} is not named NNN_name.sql")
            found.append((entry.name, entry.read_text()))
    return sorted(found)


async def migrate(pool: asyncpg.Pool, schema: str, migrations: list[tuple[str, str]]) -> int:
    """Apply the missing migrations of ``schema``; returns how many were applied."""
    applied_now = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations (
                name text PRIMARY KEY, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch(f'SELECT name, checksum FROM "{schema}".schema_migrations')
        done = {r["name"]: r["checksum"] for r in rows}
        for name, sql in migrations:
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if name in done:
                if done[name] != checksum:
                    raise MigrationError(f"migration {schema}/{name} changed after it was applied")
                continue
            await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
            await conn.execute(sql)
            await conn.execute(
                f'INSERT INTO "{schema}".schema_migrations (name, checksum) VALUES ($1, $2)',
                name,
                checksum,
            )
            applied_now += 1
            log.info("migration applied", schema=schema, migration=name)
    return applied_now


def from_row(cls: type[D], row: asyncpg.Record, **given: Any) -> D:
    """A dataclass from a row whose columns carry its fields' names; ``given`` holds the
    fields the row stores otherwise (decoded, sealed or under another column name)."""
    return cls(**{f.name: given[f.name] if f.name in given else row[f.name] for f in fields(cls)})


# Rows from which a batch goes to Postgres by COPY rather than as unnest() arrays. asyncpg
# checks every array element against collections.abc types in Python before encoding it;
# COPY encodes each value once. 10,000 message rows of 17 columns (a throwaway script, one
# embedded Postgres): unnest 55-115 ms of client CPU and 195-415 ms wall, COPY into a
# temporary table and INSERT ... SELECT 20-38 ms and 82-240 ms. Below this, the COPY's
# extra round trip costs more than the arrays (live batches are a few rows).
COPY_FROM_ROWS = 256


@dataclass(frozen=True)
class RowSet:
    """The rows one set-based statement reads, by column name and SQL type: unnest() arrays
    for a few, a COPY into a session's temporary table for many. Either way the statement
    reads them from a CTE (``WITH u AS ({rows}) ...``), once."""

    table: str  # the temporary table a COPY fills (emptied by the statement that reads it)
    columns: tuple[tuple[str, str], ...]

    def arrays(self, first: int = 1) -> str:
        """The rows as unnest() of one array parameter per column, from ``$first`` on."""
        arrays = ", ".join(f"${first + i}::{t}[]" for i, (_, t) in enumerate(self.columns))
        return f"SELECT * FROM unnest({arrays}) AS r ({self._names})"

    def staged(self) -> str:
        """The rows a COPY put in the temporary table, taken out (a later batch of the same
        transaction finds it empty)."""
        return f"DELETE FROM pg_temp.{self.table} RETURNING {self._names}"

    async def source(
        self, conn: Conn, records: Sequence[Sequence[Any]], first: int = 1
    ) -> tuple[str, list[Any]]:
        """(the query yielding ``records`` as rows, its parameters from ``$first`` on). A COPY
        needs a transaction: its temporary table is emptied at commit too, so no row outlives
        a failed statement."""
        if len(records) < COPY_FROM_ROWS or not conn.is_in_transaction():
            return self.arrays(first), [list(c) for c in zip(*records, strict=True)]
        columns = ", ".join(f"{n} {t}" for n, t in self.columns)
        await conn.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.table} ({columns}) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table(self.table, records=records, schema_name="pg_temp")
        return self.staged(), []

    async def fetch(
        self, conn: Conn, sql: str, records: Sequence[Sequence[Any]], *args: Any
    ) -> list[asyncpg.Record]:
        """Run ``sql``, whose ``WITH u AS ({rows})`` reads ``records``, with ``args`` as its
        parameters $1 to $n; answers its rows."""
        source, params = await self.source(conn, records, first=len(args) + 1)
        return await conn.fetch(sql.replace("{rows}", source), *args, *params)

    async def execute(
        self, conn: Conn, sql: str, records: Sequence[Sequence[Any]], *args: Any
    ) -> None:
        """:meth:`fetch` for a statement that answers nothing."""
        source, params = await self.source(conn, records, first=len(args) + 1)
        await conn.execute(sql.replace("{rows}", source), *args, *params)

    @property
    def _names(self) -> str:
        return ", ".join(n for n, _ in self.columns)
