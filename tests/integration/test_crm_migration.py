"""A Telegram group that became a supergroup: the conversations projection moves its
conversation and messages to the new chat id, merges with what the new id already holds,
counts no service message, and gives the same tables whatever the batch boundaries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from tests.integration.test_crm_batching import _dump, _msgs, _project

from switchboard.events import Event
from switchboard.ingest.normalize.telegram import normalize_update
from switchboard.runtime.db import create_pool

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ADA = {"id": 555, "is_bot": False, "first_name": "Ada"}
OLD = {"id": -3003, "type": "group", "title": "Club"}
NEW = {"id": -1004004, "type": "supergroup", "title": "Club"}


def tg(update_id: int, chat: dict[str, Any], **fields: Any) -> Event:
    message = {"message_id": update_id, "date": 1763640000 + update_id, "chat": chat, **fields}
    update = {"update_id": update_id, "message": {"from": ADA, **message}}
    [event] = normalize_update(update, account="shop", raw_id=f"tg:{update_id}", received_at=NOW)
    return event


EVENTS = [
    tg(1, OLD, text="one"),
    tg(2, OLD, new_chat_members=[{"id": 556, "is_bot": False, "first_name": "Bob"}]),
    tg(3, OLD, text="two"),
    tg(4, NEW, text="already in the new chat"),  # projected before the migration
    tg(5, OLD, migrate_to_chat_id=-1004004),
    tg(6, NEW, migrate_from_chat_id=-3003),  # the same migration, seen from the new chat
    tg(7, NEW, text="after"),
]


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_url, 2)
    yield pool
    await pool.close()


async def test_migration_moves_the_conversation_whatever_the_batching(
    pool: asyncpg.Pool,
) -> None:
    msgs = _msgs(EVENTS)
    await _project(pool, "one", msgs, [1])
    await _project(pool, "all", msgs, [len(msgs)])
    await _project(pool, "pairs", msgs, [2, 3])
    one = await _dump(pool, "one")
    assert await _dump(pool, "all") == one
    assert await _dump(pool, "pairs") == one
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT chat_id, chat_type, message_count FROM one.conversations")
        moved = await conn.fetch(
            "SELECT m.text FROM one.messages m JOIN one.conversations c "
            "ON c.id = m.conversation_id ORDER BY m.sent_at"
        )
    assert [tuple(r) for r in rows] == [("-1004004", "supergroup", 4)]
    assert [r["text"] for r in moved] == ["one", "two", "already in the new chat", "after"]
