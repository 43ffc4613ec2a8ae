"""A rebuild's batched replay leaves every CRM table exactly as live projection, event by
event, left it: a realistic mix over CONV, DELIVERY and CRM (messages, edits, deletions,
replies with receipts out of order, contacts, identities, notes and tags, leads through
their stages, merges, splits and erasures), applied one event per transaction in the order
it happened, and again stream after stream, in either order (erasures replayed before the
messages they blank, or after them), in one-event, large and odd batches per projection;
and messages edited and deleted around their sender's erasure, the same way. Real
Postgres."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from nats.aio.msg import Msg
from tests.support.conv import deleted, edited, received
from tests.support.streams import delivered

from switchboard.crm.app import PROJECTIONS
from switchboard.events import encode
from switchboard.events.catalog import crm
from switchboard.events.catalog.common import Channel, Chat, ChatType
from switchboard.events.catalog.conv import MessageReceived, MessageSent
from switchboard.events.catalog.delivery import DeliveryQueued, DeliveryReceipt, DeliverySent
from switchboard.runtime import db
from switchboard.runtime.db import create_pool, load_migrations, migrate
from switchboard.runtime.testing import eventually

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
STREAM_OF = {"conv": "CONV", "delivery": "DELIVERY", "crm": "CRM"}
MODULE_OF = {m.STREAM: m for m in PROJECTIONS}
# A rebuild replays the streams one after another in any order (concurrently, in fact).
ORDERS = pytest.mark.parametrize(
    "order",
    [("CRM", "CONV", "DELIVERY"), ("CONV", "DELIVERY", "CRM"), ("DELIVERY", "CRM", "CONV")],
    ids=["erasures-first", "erasures-last", "deliveries-first"],
)


@dataclass
class Person:
    channel: Channel
    chat: str
    contact: str
    lead: str | None = None
    stage: str = "new"
    erased: bool = False


def _mix(rng: random.Random, n: int) -> list[Any]:
    """About ``n`` events in the order they happened; few people, so events about the same
    contact, lead, message or chat meet in one batch often."""
    out: list[Any] = []
    people: dict[str, Person] = {}
    inbound: list[MessageReceived] = []
    i = 0
    while len(out) < n:
        i += 1
        ch = (Channel.TELEGRAM, Channel.WHATSAPP)[i % 2]
        chat = f"{ch.value[:2]}{rng.randrange(14)}"
        roll = rng.random()
        msg = received(ch, "acct", chat, f"message {i}", i, name=f"P{chat}")
        person = people.get(chat)
        if person is None:
            person = people[chat] = Person(ch, chat, f"ct_{chat}")
            out.append(msg)
            inbound.append(msg)
            identity = crm.Identity(channel=ch, external_id=chat, username=f"u{chat}")
            out.append(
                crm.ContactCreated(
                    contact_id=person.contact,
                    display_name=f"P{chat}",
                    identities=(identity,),
                    source_channel=ch,
                    attributes={"n": i},
                )
            )
            if rng.random() < 0.8:
                person.lead = f"ld_{chat}_{i}"
                out.append(
                    crm.LeadCreated(lead_id=person.lead, contact_id=person.contact, stage="new")
                )
            continue
        live = not person.erased
        if roll < 0.3:
            out.append(msg)
            inbound.append(msg)
        elif roll < 0.36 and inbound:
            out.append(edited(rng.choice(inbound[-15:]), f"edit {i}", rng.randrange(1, 60)))
        elif roll < 0.39 and inbound:
            out.append(deleted(rng.choice(inbound[-15:])))
        elif roll < 0.52:
            out += _reply(rng, ch, chat, i)
        elif roll < 0.62 and live:
            out.append(
                crm.ContactUpdated(
                    contact_id=person.contact,
                    display_name=rng.choice([None, f"Name {i}"]),
                    attributes={"k": i % 3},
                    tags_added=tuple(rng.sample(["vip", "new", "eu", "late"], 2)),
                    tags_removed=tuple(rng.sample(["vip", "new"], 1)),
                    note=rng.choice([None, f"note {i}"]),
                )
            )
        elif roll < 0.74 and live and person.lead:
            to = rng.choice(["contacted", "qualified", "won", "lost"])
            out.append(
                crm.LeadStageChanged(
                    lead_id=person.lead,
                    contact_id=person.contact,
                    from_stage=person.stage,
                    to_stage=to,
                    value=rng.choice([None, Decimal(i)]),
                    by="agent",
                )
            )
            person.stage = to
        elif roll < 0.8 and live and person.lead:
            out.append(crm.LeadAssigned(lead_id=person.lead, assignee=rng.choice([None, "ann"])))
        elif roll < 0.85 and live:
            extra = crm.Identity(channel=Channel.VIBER, external_id=f"vb{chat}", account="acct")
            out.append(
                crm.ContactIdentityLinked(contact_id=person.contact, identity=extra, matched_by="x")
            )
        elif roll < 0.88 and live:
            other = rng.choice([p for p in people.values() if not p.erased])
            if other is not person:
                out.append(
                    crm.ContactMerged(contact_id=person.contact, merged_contact_id=other.contact)
                )
        elif roll < 0.9 and live:
            identity = crm.Identity(channel=ch, external_id=chat)
            new = f"ct_{chat}_{i}"
            out.append(
                crm.ContactSplit(contact_id=person.contact, identity=identity, new_contact_id=new)
            )
            person.contact = new
        elif roll < 0.92 and live:
            out.append(crm.ContactErased(contact_id=person.contact))
            person.erased = True
    return out


def _reply(rng: random.Random, ch: Channel, chat: str, i: int) -> list[Any]:
    """Our reply to ``chat``: queued, sent, the message, and its receipts out of order."""
    at = T0 + timedelta(seconds=i)
    ids = {"message_id": f"m{i}", "channel": ch, "account": "acct", "recipient": chat}
    receipts = [
        DeliveryReceipt(
            **{**ids, "message_id": None},
            status=status,
            provider_message_id=f"p{i}",
            at=at + timedelta(seconds=k),
        )
        for k, status in enumerate(("delivered", "read"))
    ]
    rng.shuffle(receipts)  # receipts overtake each other
    text = MessageSent(
        channel=ch,
        account="acct",
        chat=Chat(id=chat),
        message_id=f"m{i}",
        provider_message_id=f"p{i}",
        text=f"re {i}",
        content_kind="text",
        sent_at=at,
    )
    queued = DeliveryQueued(**ids, at=at)
    return [queued, DeliverySent(**ids, at=at, provider_message_id=f"p{i}"), text, *receipts]


def _deliveries(events: Sequence[Any]) -> list[tuple[str, Msg]]:
    """(stream, message) for each event, numbered per stream as JetStream numbers them."""
    seqs: dict[str, int] = {}
    out = []
    for ev in events:
        enc = encode(ev, source="test", workspace_id="ws")
        stream = STREAM_OF[enc.subject.split(".")[0]]
        seqs[stream] = seqs.get(stream, 0) + 1
        out.append((stream, delivered(enc, stream, seqs[stream])))
    return out


async def _apply(conn: asyncpg.Connection, stream: str, msgs: list[Msg]) -> None:
    module = MODULE_OF[stream]
    prepare = getattr(module, "prepare", None)
    async with conn.transaction():
        if prepare is None:
            await module.apply_batch(conn, msgs)
        else:
            await module.apply_prepared(conn, await prepare(msgs))


def _batches(msgs: list[Msg], sizes: list[int]) -> Iterator[list[Msg]]:
    start, i = 0, 0
    while start < len(msgs):
        end = start + sizes[i % len(sizes)]
        yield msgs[start:end]
        start, i = end, i + 1


async def _replay(
    pool: asyncpg.Pool,
    schema: str,
    events: list[tuple[str, Msg]],
    sizes: list[int],
    order: tuple[str, ...] | None,
) -> dict[str, list[str]]:
    """The tables after applying ``events`` in batches of ``sizes`` per stream: the streams
    one after another in ``order``, or (``order`` None) taking turns batch by batch."""
    async with _fresh(pool, schema) as conn:
        queues = {
            s: _batches([m for st, m in events if st == s], sizes)
            for s in order or ("CRM", "CONV", "DELIVERY")
        }
        if order is not None:  # each stream to its end before the next
            for stream, batches in queues.items():
                for batch in batches:
                    await _apply(conn, stream, batch)
        while queues:  # the streams take turns
            for stream, batches in list(queues.items()):
                batch = next(batches, None)
                if batch is None:
                    del queues[stream]
                else:
                    await _apply(conn, stream, batch)
        return await _tables(conn, schema)


async def _live(
    pool: asyncpg.Pool, schema: str, events: list[tuple[str, Msg]]
) -> dict[str, list[str]]:
    """The tables after applying ``events`` as they arrived, one per transaction: what live
    projection leaves."""
    async with _fresh(pool, schema) as conn:
        for stream, msg in events:
            await _apply(conn, stream, [msg])
        return await _tables(conn, schema)


@asynccontextmanager
async def _fresh(pool: asyncpg.Pool, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection on a freshly migrated ``schema``."""
    await migrate(pool, schema, load_migrations("switchboard.crm"))
    async with pool.acquire() as conn:
        await conn.execute(f'SET search_path TO "{schema}"')
        yield conn


async def _tables(conn: asyncpg.Connection, schema: str) -> dict[str, list[str]]:
    """Every row of every table of ``schema`` as text, sorted."""
    tables = [
        r[0]
        for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema
        )
    ]
    return {
        t: [r[0] for r in await conn.fetch(f'SELECT t::text FROM "{schema}"."{t}" t ORDER BY 1')]
        for t in tables
        if t != "schema_migrations"
    }


@ORDERS
async def test_batched_replay_equals_event_by_event(
    postgres_url: str, order: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each projection in batches of any size, the streams one after another in ``order``,
    against live projection: one event per transaction, the streams interleaved as the
    events happened. Large batches' rows go by COPY, small ones' as arrays: both are here."""
    monkeypatch.setattr(db, "COPY_FROM_ROWS", 64)
    ways: set[str] = set()
    source = db.RowSet.source

    async def spied(self: db.RowSet, *args: Any, **kwargs: Any) -> tuple[str, list[Any]]:
        sql, params = await source(self, *args, **kwargs)
        ways.add("copy" if sql == self.staged() else "arrays")
        return sql, params

    monkeypatch.setattr(db.RowSet, "source", spied)
    events = _deliveries(_mix(random.Random(7), 1500))
    pool = await create_pool(postgres_url, 2)
    try:
        await _compare(pool, events, order)
    finally:
        await pool.close()
    assert ways == {"copy", "arrays"}


async def _compare(
    pool: asyncpg.Pool, events: list[tuple[str, Msg]], order: tuple[str, ...]
) -> None:
    one = await _live(pool, "live", events)
    # the mix exercised what it is meant to
    assert any("vip" in row for row in one["contacts"]), "tags"
    assert any(row.count("ct_") >= 2 for row in one["contacts"]), "a merge (merged_into)"
    assert one["contact_notes"]
    assert one["lead_stage_history"]
    assert one["erased_identities"]
    assert any('"erased"' in row for row in one["messages"])
    assert any('"deleted"' in row for row in one["messages"])
    assert any("read" in row for row in one["receipts"])
    batches = (("one", [1]), ("whole", [10_000]), ("odd", [7, 300, 1, 64, 2000]), ("small", [3]))
    for name, sizes in batches:
        assert await _replay(pool, name, events, sizes, order) == one, name


ADA = "tg-ada"  # the person erased
SECRETS = (ADA, "Ada Secret", "ada-text")


def _around_erasure() -> list[Any]:
    """Ada's messages edited and deleted before her erasure and after it (one edited on both
    sides, one edited before it arrived), our reply to her, and Bob who stays; in the order
    they happened."""
    ch = Channel.TELEGRAM
    m = {n: received(ch, "acct", ADA, f"ada-text {n}", n, name="Ada Secret") for n in range(1, 9)}
    bob = received(ch, "acct", "tg-bob", "bob text", 20, name="Bob")
    identity = crm.Identity(channel=ch, external_id=ADA)
    reply = MessageSent(
        channel=ch,
        account="acct",
        chat=Chat(id=ADA),
        message_id="m-reply",
        provider_message_id="p-reply",
        text="ada-text reply",
        content_kind="text",
        sent_at=T0 + timedelta(seconds=9),
    )
    return [
        m[1],
        crm.ContactCreated(
            contact_id="ct_ada", display_name="Ada Secret", identities=(identity,),
            source_channel=ch,
        ),
        *(m[n] for n in range(2, 7)),
        reply,
        bob,
        edited(m[8], "ada-text 8 early edit", 1),  # before its message arrived
        edited(m[1], "ada-text 1 edited before", 10),
        deleted(m[2]),
        edited(m[5], "ada-text 5 edited before", 5),
        edited(m[6], "ada-text 6 edited before", 5),
        crm.ContactErased(contact_id="ct_ada"),
        edited(m[3], "ada-text 3 edited after", 20),
        deleted(m[4]),
        edited(m[5], "ada-text 5 edited after", 30),
        deleted(m[6]),
        m[7],
        edited(m[7], "ada-text 7 edited after", 3),
        deleted(m[1]),
        m[8],
        edited(bob, "bob edited", 2),
    ]  # fmt: skip


@ORDERS
async def test_rebuild_equals_live_around_an_erasure(
    postgres_url: str, order: tuple[str, ...]
) -> None:
    """Messages edited and deleted before and after their sender's erasure: a rebuild with
    the streams in any order leaves the tables live projection left, edits and deletions
    kept as metadata (when, what kind), and none of the person's texts."""
    events = _deliveries(_around_erasure())
    pool = await create_pool(postgres_url, 2)
    try:
        live = await _live(pool, "live", events)
        assert await _replay(pool, "rebuilt", events, [1], order) == live
        assert await _replay(pool, "whole", events, [10_000], order) == live
        assert not [s for s in SECRETS if s in "".join(map(str, live.values()))], "erased"
        rows = "\n".join(live["messages"])
        assert rows.count('"erased"') == 9, rows  # Ada's eight and our reply, deleted or not
        assert "bob edited" in rows
    finally:
        await pool.close()


def _in_groups() -> list[Any]:
    """Ada writing last in a group with Bob, and alone in another group, then erased."""
    ch = Channel.TELEGRAM

    def said(who: str, group: str, n: int) -> MessageReceived:
        chat = Chat(id=group, type=ChatType.GROUP, title=f"team {group}")
        return received(ch, "acct", who, f"{who} ada-text {n}", n).model_copy(update={"chat": chat})

    identity = crm.Identity(channel=ch, external_id=ADA)
    return [
        said("tg-bob", "g1", 1),
        crm.ContactCreated(contact_id="ct_ada", identities=(identity,), source_channel=ch),
        said(ADA, "g1", 2),
        said(ADA, "g2", 3),
        crm.ContactErased(contact_id="ct_ada"),
        said(ADA, "g2", 4),
    ]


@ORDERS
async def test_rebuild_equals_live_for_groups_around_an_erasure(
    postgres_url: str, order: tuple[str, ...]
) -> None:
    """A group's title and preview after a member's erasure: the same live and rebuilt, and
    the preview never the erased member's text."""
    events = _deliveries(_in_groups())
    pool = await create_pool(postgres_url, 2)
    try:
        live = await _live(pool, "live", events)
        assert await _replay(pool, "rebuilt", events, [1], order) == live
        assert "tg-ada ada-text" not in "".join(map(str, live.values()))
        assert any('"team g2"' in row for row in live["conversations"]), "title kept"
    finally:
        await pool.close()


def _early_edits() -> list[Any]:
    """Ada edits two messages before they arrive (CONV order across redeliveries), is
    erased, then one of them arrives and the other never does; Bob's early edit stays."""
    ch = Channel.TELEGRAM
    first = received(ch, "acct", ADA, "ada-text 1", 1, name="Ada Secret")
    late = received(ch, "acct", ADA, "ada-text 2", 2, name="Ada Secret")
    never = received(ch, "acct", ADA, "ada-text 3", 3, name="Ada Secret")
    bob = received(ch, "acct", "tg-bob", "bob text", 4, name="Bob")
    identity = crm.Identity(channel=ch, external_id=ADA)
    return [
        first,
        crm.ContactCreated(
            contact_id="ct_ada", display_name="Ada Secret", identities=(identity,),
            source_channel=ch,
        ),
        edited(late, "ada-text 2 early edit", 5),
        edited(never, "ada-text 3 early edit", 5),
        edited(bob, "bob early edit", 5),
        crm.ContactErased(contact_id="ct_ada"),
        edited(never, "ada-text 3 edit after", 9),  # her edit arriving after the erasure
        late,
    ]  # fmt: skip


@ORDERS
async def test_an_erased_persons_early_edits_keep_no_text(
    postgres_url: str, order: tuple[str, ...]
) -> None:
    """Edits that arrived before their message are blanked by their author's erasure (and
    blanked on arrival after it): none of her text stays readable, whether the message
    lands later or never, live and after a rebuild in any stream order; the edits stay as
    metadata and apply as that; Bob's waits intact."""
    events = _deliveries(_early_edits())
    erasure = next(i for i, (s, _) in enumerate(events) if s == "CRM" and i > 1)
    pool = await create_pool(postgres_url, 2)
    try:
        # right after the erasure, before her message arrives
        just_erased = await _live(pool, "erased", events[: erasure + 1])
        assert not [s for s in SECRETS if s in "".join(map(str, just_erased.values()))]
        assert len(just_erased["pending_edits"]) == 3
        live = await _live(pool, "live", events)
        assert not [s for s in SECRETS if s in "".join(map(str, live.values()))], "erased"
        waiting = "\n".join(live["pending_edits"])
        assert waiting.count('"erased"') == 2, waiting  # the message that never came
        assert "bob early edit" in waiting
        rows = "\n".join(live["messages"])
        assert rows.count('"erased"') == 2, rows  # both of hers that arrived
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT text, content, edited_at FROM live.messages WHERE provider_message_id = '2'"
            )
        # the early edit applied to the message that landed after the erasure: its time only
        assert (row["text"], row["content"]) == (None, '{"kind": "erased"}')
        assert row["edited_at"] == T0 + timedelta(seconds=7)
        assert await _replay(pool, "rebuilt", events, [1], order) == live
        assert await _replay(pool, "whole", events, [10_000], order) == live
    finally:
        await pool.close()


def _deleted_latest() -> list[Any]:
    """Latest messages deleted: in a group (Bob's, the message before it Ada's, who is then
    erased), in Cy's chat (then an older message arrives late), in Dee's (her only one)."""
    ch = Channel.TELEGRAM

    def said(who: str, text: str, n: int) -> MessageReceived:
        chat = Chat(id="g1", type=ChatType.GROUP, title="team")
        return received(ch, "acct", who, text, n).model_copy(update={"chat": chat})

    bob_gone = said("tg-bob", "bob gone-text", 3)
    cy_gone = received(ch, "acct", "tg-cy", "cy gone-text", 10)
    dee = received(ch, "acct", "tg-dee", "dee gone-text", 11)
    identity = crm.Identity(channel=ch, external_id=ADA)
    return [
        said("tg-bob", "bob first", 1),
        said(ADA, "ada-text 2", 2),
        bob_gone,
        crm.ContactCreated(contact_id="ct_ada", identities=(identity,), source_channel=ch),
        deleted(bob_gone),  # the group's preview falls back to Ada's message...
        crm.ContactErased(contact_id="ct_ada"),  # ...and from it, erased, to Bob's first
        received(ch, "acct", "tg-cy", "cy first", 7),
        cy_gone,
        deleted(cy_gone),
        received(ch, "acct", "tg-cy", "cy late", 8),  # sent before the deleted one
        dee,
        deleted(dee),
    ]


@ORDERS
async def test_a_deleted_latest_message_leaves_the_preview(
    postgres_url: str, order: tuple[str, ...]
) -> None:
    """The preview of a conversation whose latest message was deleted falls back to the
    newest message neither deleted nor erased, or none: live, and the same after a rebuild
    in any stream order; no deleted text stays in the conversations."""
    events = _deliveries(_deleted_latest())
    pool = await create_pool(postgres_url, 2)
    try:
        live = await _live(pool, "live", events)
        async with pool.acquire() as conn:
            previews = {
                r["chat_id"]: r["last_preview"]
                for r in await conn.fetch("SELECT chat_id, last_preview FROM live.conversations")
            }
        assert previews == {"g1": "bob first", "tg-cy": "cy late", "tg-dee": None}
        assert "gone-text" not in "".join(live["conversations"])
        assert "ada-text" not in "".join(map(str, live.values()))
        assert await _replay(pool, "rebuilt", events, [1], order) == live
        assert await _replay(pool, "whole", events, [10_000], order) == live
    finally:
        await pool.close()


async def test_the_erasure_blanks_early_edits_written_before_they_named_their_author(
    postgres_url: str,
) -> None:
    """A pending edit from before migration 008 (no author hash) in the erased person's
    one-to-one chat is blanked by the erasure too."""
    events = _deliveries(_early_edits())
    erasure = next(i for i, (s, _) in enumerate(events) if s == "CRM" and i > 1)
    pool = await create_pool(postgres_url, 2)
    try:
        async with _fresh(pool, "legacy") as conn:
            for stream, msg in events[:erasure]:
                await _apply(conn, stream, [msg])
            await conn.execute("UPDATE pending_edits SET erase_hash = NULL")
            stream, msg = events[erasure]
            await _apply(conn, stream, [msg])
            waiting = await conn.fetch(
                "SELECT provider_message_id, text FROM pending_edits ORDER BY 1"
            )
        assert [tuple(r) for r in waiting] == [("2", None), ("3", None), ("4", "bob early edit")]
    finally:
        await pool.close()


async def _waiting_or_done(conn: asyncpg.Connection, pid: int, task: asyncio.Task[None]) -> bool:
    """``task`` (a transaction on the backend ``pid``) finished its statements, or waits for
    a lock another transaction holds."""
    if task.done():
        return True
    waits = await conn.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
    return bool(waits == "Lock")


@pytest.mark.parametrize("first", ["CRM", "CONV"], ids=["erasure-first", "messages-first"])
async def test_an_erasure_and_its_messages_projected_at_the_same_time(
    postgres_url: str, first: str
) -> None:
    """A rebuild replays the streams concurrently, and live projections run side by side:
    the CRM projection erasing Ada while the conversation projection inserts her messages,
    each in its own open transaction, leaves the tables one-by-one application leaves. The
    erasure updated only rows committed before it, and the inserts blanked only for
    erasures committed before them: with both in flight, neither saw the other's."""
    events = _deliveries(_around_erasure())
    pool = await create_pool(postgres_url, 4)
    try:
        live = await _live(pool, "live", events)
        await migrate(pool, "racing", load_migrations("switchboard.crm"))
        second = "CONV" if first == "CRM" else "CRM"
        async with pool.acquire() as one, pool.acquire() as two, pool.acquire() as watch:
            for conn in (one, two):
                await conn.execute('SET search_path TO "racing"')
            applied, commit = asyncio.Event(), asyncio.Event()

            async def in_flight() -> None:
                async with one.transaction():
                    module = MODULE_OF[first]
                    await module.apply_prepared(
                        one, await module.prepare([m for s, m in events if s == first])
                    )
                    applied.set()
                    await commit.wait()

            held = asyncio.create_task(in_flight())
            await asyncio.wait_for(applied.wait(), 10)
            other = asyncio.create_task(_apply(two, second, [m for s, m in events if s == second]))
            pid = two.get_server_pid()
            await eventually(lambda: _waiting_or_done(watch, pid, other), message="second")
            commit.set()
            await asyncio.wait_for(asyncio.gather(held, other), 10)
            await _apply(one, "DELIVERY", [m for s, m in events if s == "DELIVERY"])
            assert await _tables(one, "racing") == live
    finally:
        await pool.close()


async def test_merges_racing_in_opposite_directions_leave_the_last_survivor_live(
    postgres_url: str,
) -> None:
    """Ada absorbs Bob while Bob absorbs Ada (each decision saw the other contact live):
    the later merge's survivor holds both and is listed; before, it was folded into itself
    and both vanished."""
    ch = Channel.TELEGRAM
    ada, bob = crm.Identity(channel=ch, external_id=ADA), crm.Identity(channel=ch, external_id="b")
    events = _deliveries(
        [
            crm.ContactCreated(contact_id="ct_a", identities=(ada,), source_channel=ch),
            crm.ContactCreated(contact_id="ct_b", identities=(bob,), source_channel=ch),
            crm.ContactMerged(contact_id="ct_a", merged_contact_id="ct_b"),
            crm.ContactMerged(contact_id="ct_b", merged_contact_id="ct_a"),
        ]
    )
    pool = await create_pool(postgres_url, 2)
    try:
        live = await _live(pool, "live_race", events)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT id, merged_into FROM live_race.contacts ORDER BY id")
            owners = await conn.fetch(
                "SELECT DISTINCT contact_id FROM live_race.contact_identities"
            )
        assert [(r["id"], r["merged_into"]) for r in rows] == [("ct_a", "ct_b"), ("ct_b", None)]
        assert [r["contact_id"] for r in owners] == ["ct_b"]
        assert await _replay(pool, "rebuilt_race", events, [10_000], None) == live
    finally:
        await pool.close()
