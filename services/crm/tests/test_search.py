"""The message search answers, page by page, exactly what reading every match of the
workspace and sorting it newest first answers, whether a page is found among the newest
messages (a common word) or through the full-text index (a rare one, or the end of the
matches), across page boundaries, ties in time and other workspaces' messages."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from switchboard.crm import queries
from switchboard.runtime.db import create_pool, load_migrations, migrate

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# word -> the share of messages it is in: "every" fills each page from the newest messages,
# "some" (1 in 25) and "rare" never do, "none" is in no message. "skewed" is in every message
# of the other workspace and 1 in 100 of this one: common by the table's statistics, so
# looked for among the newest messages first, which do not fill a page.
WORDS = {"every": 1.0, "some": 0.04, "rare": 0.005}


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_url, 2, schema="crm")
    await migrate(pool, "crm", load_migrations("switchboard.crm"))
    rnd = random.Random(7)
    rows = []
    for i in range(3000):
        # Several messages share a time (the tie-breaker orders them), and one in ten
        # belongs to another workspace.
        other = i % 10 == 0
        words = [w for w, share in WORDS.items() if rnd.random() < share]
        text = " ".join(words + ["skewed"] * (other or rnd.random() < 0.01))
        rows.append(
            (
                f"e{i}",
                f"c{i % 7}",
                "other" if other else "ws",
                str(i),
                text,
                json.dumps({"text": text}),
                T0 + timedelta(seconds=i // 3),
                i + 1,
            )
        )
    async with pool.acquire() as conn:
        await conn.executemany(
            """INSERT INTO conversations (id, workspace_id, channel, account, chat_id,
                   chat_type, first_message_at, last_message_at, updated_seq)
               VALUES ($1, 'ws', 'telegram', 'bot', $1, 'private', $2, $2, 0)""",
            [(f"c{i}", T0) for i in range(7)],
        )
        await conn.copy_records_to_table(
            "messages",
            records=[(*r[:3], "in", *r[3:5], "text", *r[5:]) for r in rows],
            columns=[
                "event_id",
                "conversation_id",
                "workspace_id",
                "direction",
                "provider_message_id",
                "text",
                "kind",
                "content",
                "sent_at",
                "stream_seq",
            ],
        )
        await conn.execute("ANALYZE messages")
    yield pool
    await pool.close()


async def every_match(conn: Any, text: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """The page as reading and sorting every match gives it (the search's specification)."""
    f = queries.Filters("ws", "m.workspace_id")
    f.add("m.search @@ plainto_tsquery('simple', {})", text)
    keys = queries.Keyset("m.sent_at", "m.stream_seq", tie_is_int=True)
    return await queries._keyset_page(
        conn, queries.MESSAGE_SELECT, f, keys, limit=limit, cursor=cursor
    )


async def forget_statistics(conn: Any) -> None:
    """The table as it is before its first ANALYZE (new, or just rebuilt)."""
    await conn.execute("DELETE FROM pg_statistic WHERE starelid = 'messages'::regclass")


async def rows_read(conn: Any, text: str) -> dict[str, int]:
    """How many rows of the messages table each way of the search's plan read
    (``EXPLAIN ANALYZE``): ``walk`` in the newest messages, ``index`` through the full-text
    index (the second part of the UNION; its nodes "never executed" when the walk filled
    the page)."""
    sql, args = queries.search_statement("ws", text, limit=100, cursor=None)
    plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    read = {"walk": 0, "index": 0}

    def walk(node: dict[str, Any], way: str | None) -> None:
        if node.get("Subplan Name") == "CTE newest":
            way = "walk"
        elif node.get("Alias") == "*SELECT* 2":
            way = "index"
        if way and node.get("Relation Name") == "messages":
            read[way] += int(node.get("Actual Rows", 0)) * int(node.get("Actual Loops", 0))
        for child in node.get("Plans", []):
            walk(child, way)

    walk(json.loads(plan)[0]["Plan"], None)
    return read


@pytest.mark.parametrize("analyzed", [True, False], ids=["analyzed", "no-statistics"])
async def test_a_common_word_is_found_among_the_newest_with_or_without_statistics(
    pool: asyncpg.Pool, analyzed: bool
) -> None:
    # Without statistics every match of "every" was read through the full-text index and
    # sorted, which grew with the table (10 ms at 20,000 messages).
    async with pool.acquire() as conn:
        if not analyzed:
            await forget_statistics(conn)
        read = await rows_read(conn, "every")
    assert read["index"] == 0, read  # the full-text index path never ran
    assert read["walk"] > 0, read


@pytest.mark.parametrize("analyzed", [True, False], ids=["analyzed", "no-statistics"])
@pytest.mark.parametrize("word", [*WORDS, "none", "every some", "skewed"])
@pytest.mark.parametrize("limit", [1, 10, 100])
async def test_each_page_is_the_newest_matches_after_the_cursor(
    pool: asyncpg.Pool, word: str, limit: int, analyzed: bool
) -> None:
    cursor: str | None = None
    seen: list[str] = []
    async with pool.acquire() as conn:
        if not analyzed:
            await forget_statistics(conn)
        for _ in range(3000):
            page = await queries.search_messages(conn, "ws", word, limit=limit, cursor=cursor)
            assert page == await every_match(conn, word, limit, cursor)
            seen += [m["id"] for m in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None or len(seen) >= 300:
                break
        everything = await every_match(conn, word, 500, None)
    assert seen == [m["id"] for m in everything["items"]][: len(seen)]
    if cursor is None:  # the pages ended: they held every match
        assert len(seen) == len(everything["items"])
    assert all(int(i[1:]) % 10 for i in seen)  # never another workspace's
