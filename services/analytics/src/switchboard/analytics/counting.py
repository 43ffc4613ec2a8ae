"""Set-based reads and writes shared by the projectors: the rows a batch touches, which
events are new, and counter upserts.

Counters are additive, so a batch's effect does not depend on where batch boundaries fall
(the live service and a rebuild cut the streams differently and must agree byte for byte).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from switchboard.analytics.items import Item, hour_of
from switchboard.runtime.db import Conn
from switchboard.runtime.identity import keyed_hash


async def rows_for(
    conn: Conn, table: str, column: str, keys: Collection[tuple[str, str]]
) -> list[Any]:
    """The rows of ``table`` whose (``workspace_id``, ``column``) is one of ``keys``, read
    in one query however many keys a batch has."""
    return await conn.fetch(
        f"""SELECT t.* FROM {table} t JOIN unnest($1::text[], $2::text[]) AS k(ws, id)
            ON t.workspace_id = k.ws AND t.{column} = k.id""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )


async def fresh(conn: Conn, items: Sequence[Item]) -> list[Item]:
    """The items whose ce-id was never counted before, in order, each id once. Ids are
    kept keyed-hashed: a message's id names its chat (often a phone number)."""
    order: dict[str, Item] = {}
    for item in items:
        order.setdefault(keyed_hash("event", item.envelope.id), item)
    if not order:
        return []
    rows = await conn.fetch(
        """INSERT INTO seen_events (id) SELECT unnest($1::text[])
           ON CONFLICT DO NOTHING RETURNING id""",
        list(order),
    )
    new = {r["id"] for r in rows}
    return [item for key, item in order.items() if key in new]


@dataclass(frozen=True)
class CounterTable:
    """A rollup table: key columns with their SQL types, one counter column, and optionally
    a text column keeping the first example seen for the key."""

    name: str
    keys: tuple[tuple[str, str], ...]
    counter: str
    example: str | None = None


@dataclass
class Deltas:
    """Counter changes accumulated over a batch, written with one statement per table."""

    table: CounterTable
    counts: dict[tuple[Any, ...], int] = field(default_factory=dict)
    examples: dict[tuple[Any, ...], str] = field(default_factory=dict)
    decremented: bool = False

    def add(self, key: tuple[Any, ...], n: int = 1, example: str | None = None) -> None:
        self.counts[key] = self.counts.get(key, 0) + n
        self.decremented = self.decremented or n < 0
        if example is not None:
            self.examples.setdefault(key, example)

    async def write(self, conn: Conn) -> None:
        if not self.counts:
            return
        t = self.table
        names = [k for k, _ in t.keys]
        columns = [[key[i] for key in self.counts] for i in range(len(names))]
        values: list[Any] = [*columns, list(self.counts.values())]
        types = [typ for _, typ in t.keys] + ["bigint"]
        cols = [*names, t.counter]
        update = f"{t.counter} = {t.name}.{t.counter} + EXCLUDED.{t.counter}"
        if t.example:
            values.append([self.examples.get(key) for key in self.counts])
            types.append("text")
            cols.append(t.example)
            update += f", {t.example} = COALESCE({t.name}.{t.example}, EXCLUDED.{t.example})"
        params = ", ".join(f"${i + 1}::{typ}[]" for i, typ in enumerate(types))
        await conn.execute(
            f"""INSERT INTO {t.name} ({", ".join(cols)}) SELECT * FROM unnest({params})
                ON CONFLICT ({", ".join(names)}) DO UPDATE SET {update}""",
            *values,
        )
        if self.decremented:
            # A move between keys (a receipt attributed to its campaign later) can empty a
            # row; dropping it keeps the table independent of where batches were cut.
            keys = ", ".join(f"${i + 1}::{typ}[]" for i, (_, typ) in enumerate(t.keys))
            await conn.execute(
                f"""DELETE FROM {t.name} WHERE {t.counter} = 0
                    AND ({", ".join(names)}) IN (SELECT * FROM unnest({keys}))""",
                *columns,
            )


# (workspace, key, hour, channel, account, ms) of one latency sample
Sample = tuple[str, str, datetime, str, str, float]


async def save_samples(conn: Conn, kind: str, samples: Sequence[Sample]) -> None:
    """Latency samples of ``kind``, each (kind, workspace, key) once."""
    if samples:
        await conn.execute(
            """INSERT INTO latency_samples (kind, workspace_id, key, hour, channel, account, ms)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::timestamptz[],
                                        $5::text[], $6::text[], $7::float8[])
               ON CONFLICT DO NOTHING""",
            kind,
            *[list(col) for col in zip(*samples, strict=True)],
        )


EVENT_COUNTS = CounterTable(
    "event_counts",
    (
        ("workspace_id", "text"),
        ("hour", "timestamptz"),
        ("stream", "text"),
        ("name", "text"),
        ("channel", "text"),
        ("account", "text"),
    ),
    "events",
)


def count_events(stream: str, items: Iterable[Item]) -> Deltas:
    """Every event by name, hour of its envelope time, channel and account."""
    deltas = Deltas(EVENT_COUNTS)
    for item in items:
        deltas.add(
            (
                item.workspace,
                hour_of(item.envelope.time),
                stream,
                item.name,
                item.field("channel"),
                item.field("account", "session_id", "session"),
            )
        )
    return deltas


def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
