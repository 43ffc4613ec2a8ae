"""``db.RowSet``: a statement reads the same rows whether they came as unnest() arrays or
by COPY, once each, and a COPY's rows never reach another statement. Real Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from switchboard.runtime import db

ROWS = db.RowSet(
    "staged_things",
    (("id", "text"), ("doc", "jsonb"), ("at", "timestamptz"), ("n", "bigint"), ("note", "text")),
)
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
INSERT = """WITH u AS ({rows})
INSERT INTO things SELECT u.id, u.doc, u.at, u.n * $1, u.note FROM u ORDER BY u.n
ON CONFLICT DO NOTHING RETURNING id"""


def _records(first: int, count: int) -> list[tuple[object, ...]]:
    return [
        (f"t{i}", f'{{"i": {i}}}', T0 + timedelta(seconds=i), i, None if i % 3 else "ü, \t\\n")
        for i in range(first, first + count)
    ]


async def _insert(conn: asyncpg.Connection, records: list[tuple[object, ...]]) -> set[str]:
    source, params = await ROWS.source(conn, records, first=2)
    return {r["id"] for r in await conn.fetch(INSERT.replace("{rows}", source), 10, *params)}


@pytest.fixture
async def conn(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(postgres_url)
    await c.execute("DROP TABLE IF EXISTS things")
    await c.execute(
        "CREATE TABLE things (id text PRIMARY KEY, doc jsonb, at timestamptz, n bigint, note text)"
    )
    yield c
    await c.close()


async def _table(conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    return [tuple(r) for r in await conn.fetch("SELECT * FROM things ORDER BY n")]


@pytest.mark.parametrize("copy_from", [1, 10**9], ids=["copy", "arrays"])
async def test_both_ways_write_the_same_rows_and_each_batch_once(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, copy_from: int
) -> None:
    monkeypatch.setattr(db, "COPY_FROM_ROWS", copy_from)
    async with conn.transaction():
        first = await _insert(conn, _records(0, 500))
        # the second batch of the transaction reads only its own rows, not the first's again
        second = await _insert(conn, _records(400, 200))
    assert first == {f"t{i}" for i in range(500)}
    assert second == {f"t{i}" for i in range(500, 600)}
    rows = await _table(conn)
    assert len(rows) == 600
    assert rows[6] == ("t6", '{"i": 6}', T0 + timedelta(seconds=6), 60, "ü, \t\\n")
    assert rows[7][4] is None


async def test_a_failed_statement_leaves_no_copied_row_behind(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "COPY_FROM_ROWS", 1)
    bad = [*_records(0, 10), ("t0-again", "not json", T0, 1, None)]
    with pytest.raises(asyncpg.PostgresError):
        async with conn.transaction():
            await _insert(conn, bad)
    async with conn.transaction():
        assert await _insert(conn, _records(20, 5)) == {f"t{i}" for i in range(20, 25)}
    assert [r[0] for r in await _table(conn)] == [f"t{i}" for i in range(20, 25)]


async def test_outside_a_transaction_the_rows_go_as_arrays(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # autocommit would empty the temporary table between the COPY and the statement
    monkeypatch.setattr(db, "COPY_FROM_ROWS", 1)
    source, _ = await ROWS.source(conn, _records(0, 3))
    assert source.startswith("SELECT * FROM unnest(")
    assert await _insert(conn, _records(0, 3)) == {"t0", "t1", "t2"}
