"""Everything the platform stored, as text, for the tests that search it for leaked secrets:
every message of every stream (KV buckets and their history included) and every row of
every Postgres table."""

from __future__ import annotations

import asyncpg
from nats.js.errors import NotFoundError

from switchboard.runtime.bus import Bus


async def stream_dump(nats_url: str, streams: tuple[str, ...] | None = None) -> str:
    """Subject, headers and body of every message still in any stream (or in ``streams``)."""
    bus = await Bus.connect(nats_url, name="dump")
    out = bytearray()
    try:
        for info in await bus.js.streams_info():
            name = info.config.name
            assert name is not None
            if streams is not None and name not in streams:
                continue
            if not info.state.messages:  # an empty stream has no sequence 0 to read
                continue
            seq, last = info.state.first_seq, info.state.last_seq
            while seq <= last:
                try:
                    msg = await bus.js.get_msg(name, seq)
                except NotFoundError:  # deleted or purged since the stream was listed
                    pass
                else:
                    out += (msg.subject or "").encode() + b"\n"
                    out += repr(dict(msg.headers or {})).encode() + b"\n"
                    out += (msg.data or b"") + b"\n"
                if seq == last:
                    # A key rewritten while we read (a lease's heartbeat) replaced the
                    # revision we listed with one past ``last``: read on to the stream's end.
                    last = (await bus.js.stream_info(name)).state.last_seq
                seq += 1
    finally:
        await bus.close()
    return out.decode(errors="replace")


async def postgres_dump(postgres_url: str) -> str:
    """Every row of every table outside the system schemas, one row a line as Postgres
    writes it."""
    conn = await asyncpg.connect(postgres_url)
    try:
        tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        parts = []
        for t in tables:
            rows = await conn.fetch(
                f'SELECT t::text AS row FROM "{t["schemaname"]}"."{t["tablename"]}" t'
            )
            parts += [r["row"] for r in rows]
        return "\n".join(parts)
    finally:
        await conn.close()
