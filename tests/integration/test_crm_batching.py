"""The conversations projection applies a batch with exactly the effect of applying its
events one by one, whatever the batch boundaries: edits that overtake their message, edits
and deletions of messages in the same batch, duplicates, erased senders, both directions.
Real Postgres; the messages are built as JetStream would deliver them."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from nats.aio.msg import Msg
from tests.support.conv import deleted, edited
from tests.support.streams import delivered

from switchboard.crm import keys, projector
from switchboard.crm.ids import conversation_id
from switchboard.events import encode
from switchboard.events.catalog.common import Channel, Chat, Sender
from switchboard.events.catalog.conv import (
    MessageReceived,
    MessageSent,
    ProviderIds,
    TextContent,
)
from switchboard.runtime import pii
from switchboard.runtime.db import create_pool, load_migrations, migrate

TABLES = ("messages", "conversations", "pending_edits")
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ERASED = ("te7", "wh3")  # senders erased before the replay starts


def received(
    channel: Channel, account: str, who: str, text: str, n: int, name: str = "Ada"
) -> MessageReceived:
    return MessageReceived(
        channel=channel,
        account=account,
        chat=Chat(id=who, title=f"chat {who}"),
        content=TextContent(text=text),
        sender=Sender(id=who, display_name=name),
        provider=ProviderIds(message_id=str(n)),
        sent_at=T0 + timedelta(seconds=n),
        received_at=T0 + timedelta(seconds=n),
    )


def sent(channel: Channel, who: str, message_id: str, provider_id: str, n: int) -> MessageSent:
    return MessageSent(
        channel=channel,
        account="acct",
        chat=Chat(id=who),
        message_id=message_id,
        provider_message_id=provider_id,
        text=f"re {n}",
        content_kind="text",
        sent_at=T0 + timedelta(seconds=n),
    )


def _stream(rng: random.Random, n: int) -> list[object]:
    """Few chats, so events collide often; edits and deletions target recent messages,
    messages that come later (they overtake), and messages of the other direction."""
    channels = (Channel.TELEGRAM, Channel.WHATSAPP)
    out: list[object] = []
    inbound: list[MessageReceived] = []
    for i in range(n):
        ch = channels[i % 2]
        who = f"{ch.value[:2]}{rng.randrange(12)}"
        roll = rng.random()
        if roll < 0.15 and inbound:
            base = rng.choice(inbound[-20:])
            out.append(edited(base, f"edit {i}", rng.randrange(1, 90)))
        elif roll < 0.22:
            # an edit or a deletion of a message that arrives later (or never)
            ahead = received(ch, "acct", who, "later", i + rng.randrange(1, 30))
            early = edited(ahead, f"early edit {i}", rng.randrange(1, 90))
            out.append(early if roll < 0.2 else deleted(ahead))
        elif roll < 0.25 and inbound:
            out.append(deleted(rng.choice(inbound[-20:])))
        elif roll < 0.3 and out:
            out.append(rng.choice(out))  # a duplicate (a replayed import, a retried publish)
        elif roll < 0.45:
            # the business's own message, sometimes with an inbound message's provider id
            out.append(sent(ch, who, f"m{i}", str(i + rng.randrange(-2, 3)), i))
        else:
            msg = received(ch, "acct", who, f"message {i}", i, f"P{who}")
            inbound.append(msg)
            out.append(msg)
    return out


def _msgs(events: list[object], workspaces: list[str] | None = None) -> list[Msg]:
    msgs = []
    for seq, ev in enumerate(events, start=1):
        ws = workspaces[seq - 1] if workspaces else "ws"
        enc = encode(ev, source="test", workspace_id=ws)  # type: ignore[arg-type]
        msgs.append(delivered(enc, "CONV", seq))
    return msgs


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_url, 2)
    yield pool
    await pool.close()


async def _project(pool: asyncpg.Pool, schema: str, msgs: list[Msg], sizes: list[int]) -> None:
    await migrate(pool, schema, load_migrations("switchboard.crm"))
    async with pool.acquire() as conn:
        await conn.execute(f'SET search_path TO "{schema}"')
        for who in ERASED:
            channel = Channel.TELEGRAM if who.startswith("te") else Channel.WHATSAPP
            await conn.execute(
                "INSERT INTO erased_identities VALUES ($1)",
                keys.erased_identity_hash("ws", channel.value, who),
            )
        start, i = 0, 0
        while start < len(msgs):
            end = start + sizes[i % len(sizes)]
            async with conn.transaction():
                await projector.apply_prepared(conn, await projector.prepare(msgs[start:end]))
            start, i = end, i + 1


async def _dump(pool: asyncpg.Pool, schema: str) -> dict[str, list[str]]:
    async with pool.acquire() as conn:
        return {
            t: [r[0] for r in await conn.fetch(f'SELECT t::text FROM "{schema}".{t} t ORDER BY 1')]
            for t in TABLES
        }


async def test_any_batching_equals_one_by_one(pool: asyncpg.Pool) -> None:
    rng = random.Random(5)
    msgs = _msgs(_stream(rng, 1200))
    await _project(pool, "one", msgs, [1])
    reference = await _dump(pool, "one")
    # the stream exercised what it is meant to
    assert any("edit" in row for row in reference["messages"])
    assert any('"deleted"' in row for row in reference["messages"])
    assert any('"erased"' in row for row in reference["messages"])
    assert reference["pending_edits"], "some edits never found their message"
    for name, sizes in (("whole", [len(msgs)]), ("odd", [7, 300, 1, 64, 2000]), ("small", [3])):
        await _project(pool, name, msgs, sizes)
        assert await _dump(pool, name) == reference, name


async def test_an_edit_that_overtakes_its_message_is_applied_when_it_lands(
    pool: asyncpg.Pool,
) -> None:
    late = received(Channel.VIBER, "acct", "v1", "first words", 1)
    other = received(Channel.VIBER, "acct", "v1", "hello", 2)
    events: list[object] = [
        edited(late, "second thoughts", 30),
        edited(late, "final words", 60),
        edited(late, "older edit", 10),
        edited(other, "edited before our reply", 5),
        sent(Channel.VIBER, "v1", "m1", "2", 3),  # our reply shares the provider id
        late,
        edited(late, "stale edit", 20),
        other,
    ]
    msgs = _msgs(events)
    await _project(pool, "one", msgs, [1])
    await _project(pool, "all", msgs, [len(events)])
    assert await _dump(pool, "all") == await _dump(pool, "one")
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT direction, provider_message_id, text, edited_at FROM "all".messages
               WHERE conversation_id = $1 ORDER BY stream_seq""",
            conversation_id("ws", "viber", "acct", "v1"),
        )
        assert [tuple(r) for r in rows] == [
            # our reply shares a provider id with the customer's message: edits are theirs
            ("out", "2", "re 3", None),
            ("in", "1", "final words", late.sent_at + timedelta(seconds=60)),
            ("in", "2", "edited before our reply", other.sent_at + timedelta(seconds=5)),
        ]
        assert await conn.fetchval('SELECT count(*) FROM "all".pending_edits') == 0


async def test_one_event_id_in_two_workspaces_is_inserted_once_the_first_wins(
    pool: asyncpg.Pool,
) -> None:
    """Event ids come from the provider's identity, so two workspaces sharing an account
    (a misconfiguration) collide on them: the first in the stream wins, batched or not."""
    first = received(Channel.TELEGRAM, "shared", "t1", "to workspace a", 1)
    again = received(Channel.TELEGRAM, "shared", "t1", "to workspace b", 1)
    events: list[object] = [edited(first, "edited in a", 5), first, again]
    msgs = _msgs(events, ["a", "a", "b"])
    await _project(pool, "one", msgs, [1])
    await _project(pool, "all", msgs, [len(events)])
    assert await _dump(pool, "all") == await _dump(pool, "one")
    async with pool.acquire() as conn:
        assert await conn.fetchval('SELECT workspace_id FROM "all".messages') == "a"


async def test_a_preview_falls_back_from_deleted_messages_and_follows_edits(
    pool: asyncpg.Pool,
) -> None:
    """The preview is the newest message neither deleted nor erased, as it reads now (edits
    included), batched or one by one: a deletion in the batch that wrote the message, an
    edit of the message shown, an early edit of a message that becomes the newest, edits
    in the batch that wrote the message (an older one last)."""
    a = received(Channel.VIBER, "acct", "v1", "first", 1)
    b = received(Channel.VIBER, "acct", "v1", "second", 2)
    c = received(Channel.VIBER, "acct", "v1", "third", 3)
    d = received(Channel.VIBER, "acct", "v2", "only", 1)
    gone = received(Channel.TELEGRAM, "acct", "te7", "erased", 1)  # an erased sender
    x = received(Channel.VIBER, "acct", "v3", "x", 1)
    events: list[object] = [
        x, edited(x, "x, edited", 5), edited(x, "x, older edit", 2),  # the later edit stays
        a, b, edited(b, "second, edited", 5), deleted(b),  # back to a
        edited(c, "third, edited early", 5), c,  # newest, with its early edit
        d, deleted(d), gone,
    ]  # fmt: skip
    msgs = _msgs(events)
    await _project(pool, "one", msgs, [1])
    await _project(pool, "all", msgs, [len(events)])
    assert await _dump(pool, "all") == await _dump(pool, "one")
    async with pool.acquire() as conn:
        previews = {
            r["chat_id"]: r["last_preview"]
            for r in await conn.fetch('SELECT chat_id, last_preview FROM "all".conversations')
        }
    marker = keys.erased_marker(keys.erased_identity_hash("ws", "telegram", "te7"))
    assert previews == {"v1": "third, edited early", "v2": None, marker: None, "v3": "x, edited"}


async def test_the_migration_sets_old_previews_by_the_same_rule(pool: asyncpg.Pool) -> None:
    """Conversations projected before previews were kept by their message (stale previews,
    no source) get, from migration 009, what the projection itself leaves."""
    msgs = _msgs(_stream(random.Random(11), 600))
    await _project(pool, "one", msgs, [50])
    reference = await _dump(pool, "one")
    assert any("null" not in row.lower() for row in reference["conversations"])
    [(_, sql)] = [m for m in load_migrations("switchboard.crm") if m[0].startswith("009_")]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute('SET LOCAL search_path TO "one"')
        await conn.execute(
            "UPDATE conversations SET last_preview = 'stale', preview_at = NULL, preview_seq = NULL"
        )
        await conn.execute(sql)
    assert await _dump(pool, "one") == reference


async def test_an_edit_replayed_after_its_authors_key_was_shredded_waits_blanked(
    pool: asyncpg.Pool,
) -> None:
    """An early edit whose author decodes as erased (a replay after the erasure shredded
    their key) waits as the erasure leaves a live one: kind and time only, its author
    recorded as erased, so the message landing later is blanked too."""
    h = keys.erased_identity_hash("ws", "viber", "v9")
    late = received(Channel.VIBER, "acct", pii.ERASED_ID + h, pii.ERASED, 1)
    await _project(pool, "one", _msgs([edited(late, pii.ERASED, 5)]), [1])
    async with pool.acquire() as conn:
        row = await conn.fetchrow('SELECT text, content, erase_hash FROM "one".pending_edits')
        erased = await conn.fetchval(
            'SELECT count(*) FROM "one".erased_identities WHERE key_hash = $1', h
        )
    assert (row["text"], row["content"], row["erase_hash"]) == (None, '{"kind": "erased"}', h)
    assert erased == 1
