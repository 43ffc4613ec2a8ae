"""The conversations projection (stream ``CONV``): conversations and messages, both sides,
with edits and deletions applied, erased people's messages blanked on sight, and a chat
whose id changed (``conv.chat_migrated``) moved to its new id. Service messages and
membership changes are no messages: they add no row and change no count.

Built for replay speed as much as for live traffic: ``prepare`` (run while the previous
batch is in Postgres) decodes and turns every event into the row or change it makes, and
``apply_prepared`` writes a batch with a handful of set-based or pipelined statements whose
effect is exactly that of applying the events one by one, in stream order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from nats.aio.msg import Msg

from switchboard.crm import keys
from switchboard.crm.decoding import decode_event
from switchboard.crm.ids import conversation_id
from switchboard.events.catalog.common import ChatType
from switchboard.events.catalog.conv import (
    CallbackReceived,
    ChatMigrated,
    Content,
    MessageDeleted,
    MessageEdited,
    MessageReceived,
    MessageSent,
)
from switchboard.runtime import pii
from switchboard.runtime.db import Conn, RowSet
from switchboard.runtime.projection import stream_seq

PROJECTION = "conversations"
STREAM = "CONV"
SUBJECTS = ("conv.>",)
ERASED_CONTENT = json.dumps({"kind": "erased"})
# Indexes no statement of this projection needs: a rebuild into fresh tables creates them
# once after the bulk load instead of maintaining them row by row (the full-text GIN index
# above all). The unique indexes stay: they are what ON CONFLICT and the edits look up.
DEFERRED_INDEXES = (
    "messages_search",
    "messages_by_conversation",
    "messages_outbound",
    "messages_newest",
    "conversations_inbox",
)

# Conversation ids and erasure hashes are sha256 digests of a few strings, computed for
# every event; the same few thousand chats recur all through a stream.
_conversation_id = lru_cache(maxsize=65536)(conversation_id)
_erased_hash = keys.erased_identity_hash  # cached there


def preview(content: Content) -> tuple[str | None, str]:
    """(searchable text, short preview) of a message's content."""
    text = getattr(content, "text", None) or getattr(content, "caption", None)
    return text, (text or f"[{content.kind}]")[:200]


def _json(content: Content) -> str:
    # For a jsonb column: key order and spacing do not survive parsing, so pydantic's own
    # serializer does (several times faster than json.dumps of model_dump).
    return content.model_dump_json(exclude_none=True)


Key = tuple[str, str]  # (conversation id, provider message id)


@dataclass(slots=True)
class Row:
    """A message row to insert (``cols`` in the INSERT's column order) with what its
    conversation needs."""

    cols: tuple[Any, ...]
    key: Key
    seq: int
    erase_hash: str | None  # the person whose data this row holds (sender, or private chat)
    private: bool  # a one-to-one chat whose id is that person's identity
    channel: str
    account: str
    chat_id: str
    chat_type: str
    title: str | None
    short: str | None

    @property
    def event_id(self) -> str:
        return str(self.cols[0])

    @property
    def sent_at(self) -> datetime:
        return self.cols[11]  # type: ignore[no-any-return]


@dataclass(slots=True)
class Edit:
    """An edit of an inbound message, as the parameters of ``EDIT_SQL``, the preview it
    gives, and whether its author arrived decoded as erased (a replay after their key was
    shredded)."""

    key: Key
    params: tuple[Any, ...]
    short: str
    shredded: bool = False

    @property
    def edited_at(self) -> datetime:
        return self.params[5]  # type: ignore[no-any-return]


@dataclass(slots=True)
class Delete:
    """Messages deleted in a conversation, as the parameters of ``DELETE_SQL``."""

    keys: tuple[Key, ...]
    params: tuple[Any, ...]


@dataclass(slots=True)
class Migrate:
    """A chat whose id changed (a Telegram group became a supergroup): its conversation
    and messages move to the new id, as the parameters of ``MIGRATE_SQL``."""

    params: tuple[Any, ...]


Change = Row | Edit | Delete
Op = Change | Migrate
Prepared = list[Op]


async def prepare(msgs: Sequence[Msg]) -> Prepared:
    """Open, decode a batch and compute every row and change (CPU work, done while the
    previous batch is in Postgres). Events this projection does not show are left out."""
    await pii.open_messages(msgs)
    out: Prepared = []
    for m in msgs:
        ev = decode_event(m)
        op = _op(ev.id, ev.workspace_id, stream_seq(m), ev.model)
        if op is not None:
            out.append(op)
    return out


def _op(event_id: str, ws: str, seq: int, ev: Any) -> Op | None:
    # Exact types, not isinstance: pydantic models' metaclass is an ABCMeta, whose
    # isinstance check was measurable at one call per event kind per event.
    kind = type(ev)
    if kind is MessageReceived:
        text, short = preview(ev.content)
        return _inbound(
            event_id, ws, seq, ev, ev.sent_at, ev.content.kind, text,
            _json(ev.content), ev.reply_to, short, ev.provider.message_id,
        )  # fmt: skip
    if kind is MessageSent:
        content = json.dumps({"kind": ev.content_kind, "text": ev.text}, sort_keys=True)
        conv = _conversation_id(ws, ev.channel.value, ev.account, ev.chat.id)
        key = (conv, ev.provider_message_id)
        cols = (
            event_id, conv, ws, "out", ev.provider_message_id, None, None, ev.content_kind,
            ev.text, content, None, ev.sent_at, None, seq, ev.message_id,
        )  # fmt: skip
        short = (ev.text or f"[{ev.content_kind}]")[:200]
        # Our reply in a one-to-one chat is personal data of the person we wrote to.
        private = ev.chat.type is ChatType.PRIVATE
        erase = _erased_hash(ws, ev.channel.value, ev.chat.id) if private else None
        return Row(
            cols, key, seq, erase, private, ev.channel.value, ev.account, ev.chat.id,
            ev.chat.type.value, ev.chat.title, short,
        )  # fmt: skip
    if kind is CallbackReceived:
        # A pressed button is part of the conversation: a message of kind "callback".
        content = json.dumps(
            {"kind": "callback", "data": ev.data, "message_id": ev.message_id}, sort_keys=True
        )
        return _inbound(
            event_id, ws, seq, ev, ev.received_at, "callback", ev.data, content,
            ev.message_id, f"[button: {ev.data or ''}]"[:200], ev.provider.message_id,
        )  # fmt: skip
    if kind is MessageEdited:
        channel = ev.channel.value
        conv = _conversation_id(ws, channel, ev.account, ev.chat.id)
        text, short = preview(ev.content)
        # The author: the sender, or in a one-to-one chat the person the chat is with.
        author = ev.sender.id if ev.sender is not None else None
        if author is None and ev.chat.type is ChatType.PRIVATE:
            author = ev.chat.id
        erase = _erased_hash(ws, channel, author) if author is not None else None
        params = (
            conv, ev.provider.message_id, text, _json(ev.content), ev.content.kind,
            ev.edited_at, ERASED_CONTENT, erase,
        )  # fmt: skip
        return Edit((conv, ev.provider.message_id), params, short, pii.is_erased(author))
    if kind is MessageDeleted:
        conv = _conversation_id(ws, ev.channel.value, ev.account, ev.chat.id)
        ids = list(ev.message_ids)
        return Delete(tuple((conv, i) for i in ids), (conv, ids, ev.deleted_at, ERASED_CONTENT))
    if kind is ChatMigrated:
        old = _conversation_id(ws, ev.channel.value, ev.account, ev.chat.id)
        new = _conversation_id(ws, ev.channel.value, ev.account, ev.to_chat_id)
        return Migrate((old, new, ev.to_chat_id, ChatType.SUPERGROUP.value, seq))
    # Service messages, membership and status changes are not messages: no row, no count.
    return None


def _inbound(
    event_id: str,
    ws: str,
    seq: int,
    ev: MessageReceived | CallbackReceived,
    sent_at: datetime,
    kind: str,
    text: str | None,
    content: str,
    reply_to: str | None,
    short: str,
    provider_id: str,
) -> Row:
    channel = ev.channel.value
    conv = _conversation_id(ws, channel, ev.account, ev.chat.id)
    cols = (
        event_id, conv, ws, "in", provider_id, ev.sender.id, ev.sender.display_name, kind,
        text, content, reply_to, sent_at, ev.received_at, seq, None,
    )  # fmt: skip
    private = ev.chat.type is ChatType.PRIVATE and ev.chat.id == ev.sender.id
    return Row(
        cols, (conv, provider_id), seq, _erased_hash(ws, channel, ev.sender.id), private,
        channel, ev.account, ev.chat.id, ev.chat.type.value, ev.chat.title, short,
    )  # fmt: skip


async def apply_batch(conn: Conn, msgs: Sequence[Msg]) -> None:
    """Decode and apply a batch (for callers without a separate prepare step)."""
    await apply_prepared(conn, await prepare(msgs))


async def apply_prepared(conn: Conn, batch: Prepared) -> None:
    """Apply a batch with the exact effect of applying its events one by one: the changes
    between two migrations go together (``apply_changes``), each migration on its own, in
    stream order (migrations are rare; what follows one must see the moved conversation)."""
    await keys.erasure_barrier(conn)
    run: list[Change] = []
    for op in batch:
        if isinstance(op, Migrate):
            await apply_changes(conn, run)
            await conn.execute(MIGRATE_SQL, *op.params)
            await conn.execute(PREVIEW_SQL, [op.params[1]], ERASED_CONTENT)
            run = []
        else:
            run.append(op)
    await apply_changes(conn, run)


async def apply_changes(conn: Conn, batch: list[Change]) -> None:
    """Apply messages, edits and deletions with the exact effect of applying them one by one.

    What one event does depends only on the earlier events of the same message (by
    conversation and provider id; inserts also by event id), except the conversation's
    summary, which depends on the order of its new messages. So the batch runs in rounds
    (``schedule``): each round inserts its new messages with one statement and pipelines
    its edits and deletions, and an event lands in a later round than any earlier event of
    its message of the other kind. The conversations are updated once, from every insert
    of the batch in stream order; then the previews of those where a message was edited or
    deleted are set from their messages (``PREVIEW_SQL``).
    """
    rounds = schedule(batch)
    # authors of edits that arrived decoded as erased: recorded as the erasure records them,
    # so their edits waiting for a message are blanked as live ones were by the erasure
    await keys.note_shredded(
        conn, {op.params[7] for op in batch if isinstance(op, Edit) and op.shredded}
    )
    new: set[str] = set()
    erased: set[str] = set()
    waiting: list[Key] = []  # new inbound messages whose early edits are not applied yet
    changed: set[str] = set()  # conversations whose preview is set from their messages
    for i, (inserts, changes) in enumerate(rounds):
        inserted, blanked = await insert_messages(conn, inserts)
        new |= inserted
        erased |= blanked
        waiting += [r.key for r in inserts if r.cols[3] == "in" and r.event_id in inserted]
        if waiting and any(later for _, later in rounds[i + 1 :]):
            # a later round may change these messages: their early edits come first
            for rec in await conn.fetch(PENDING_EDITS_SQL, *_keys(waiting), ERASED_CONTENT):
                changed.add(rec["conversation_id"])
            waiting = []
        await _change(conn, changes)
    edits, changed_too = _edits_after_insert(batch, new)
    changed |= changed_too
    # otherwise they go with the conversations' update (one round trip less per batch)
    rows = [op for op in batch if isinstance(op, Row)]
    changed |= await _conversations(conn, rows, new, erased, waiting, edits)
    if changed:
        await conn.execute(PREVIEW_SQL, sorted(changed), ERASED_CONTENT)


def _edits_after_insert(batch: list[Change], new: set[str]) -> tuple[dict[Key, Edit], set[str]]:
    """The edit that last changed each inbound message inserted by this batch (the latest
    after its insert: an earlier one waited and comes back from the pending edits), which
    its preview takes without a query (``_conversations``; measured: setting from the
    messages every conversation with an edit cost the replay of 41k CONV events 0.2-0.3 s
    in 1.3-1.4 s); and the conversations of every other edit and of the deletions, whose
    preview is set from their messages."""
    inserted: set[Key] = set()
    edits: dict[Key, Edit] = {}
    changed: set[str] = set()
    for op in batch:
        if isinstance(op, Row):
            if op.cols[3] == "in" and op.event_id in new:
                inserted.add(op.key)
        elif isinstance(op, Delete):
            changed.add(op.params[0])
        elif op.key not in inserted:
            changed.add(op.key[0])
        elif (last := edits.get(op.key)) is None or op.edited_at > last.edited_at:
            edits[op.key] = op  # EDIT_SQL applies only a later edit
    return edits, changed


def _keys(keys: list[Key]) -> tuple[list[str], list[str]]:
    return [k[0] for k in keys], [k[1] for k in keys]


Round = tuple[list[Row], list[Edit | Delete]]


def schedule(batch: list[Change]) -> list[Round]:
    """The rounds of a batch: per message, its events keep their order, since one of the
    other kind than the one before it goes to the next round, and within a round inserts
    run before changes, each in stream order."""
    rounds: list[Round] = []
    last: dict[object, tuple[int, bool]] = {}  # message key -> (round, was an insert)
    for op in batch:
        insert = isinstance(op, Row)
        if isinstance(op, Row):
            touched: tuple[object, ...] = (op.key, op.event_id)
        elif isinstance(op, Edit):
            touched = (op.key,)
        else:
            touched = op.keys
        level = 0
        for key in touched:
            seen = last.get(key)
            if seen is not None:
                level = max(level, seen[0] if seen[1] == insert else seen[0] + 1)
        for key in touched:
            last[key] = (level, insert)
        while len(rounds) <= level:
            rounds.append(([], []))
        if isinstance(op, Row):
            rounds[level][0].append(op)
        else:
            rounds[level][1].append(op)
    return rounds


# Messages of erased people (inbound from them, or ours in a one-to-one chat with them)
# lose their personal data before they are written, exactly as ``crm_projector`` blanks
# those already written (so a rebuild equals the live tables whichever runs first); the
# statement also says which of the people it saw were erased.
MESSAGE_ROWS = RowSet(
    "staged_messages",
    (
        ("event_id", "text"), ("conversation_id", "text"), ("workspace_id", "text"),
        ("direction", "text"), ("provider_message_id", "text"), ("sender_id", "text"),
        ("sender_name", "text"), ("kind", "text"), ("text", "text"), ("content", "jsonb"),
        ("reply_to", "text"), ("sent_at", "timestamptz"), ("received_at", "timestamptz"),
        ("stream_seq", "bigint"), ("message_id", "text"), ("erase_hash", "text"),
        ("erased_id", "text"),
    ),
)  # fmt: skip
INSERT_SQL = """
WITH u AS ({rows}), erased AS (
    SELECT key_hash FROM erased_identities WHERE key_hash IN (SELECT erase_hash FROM u)
), inserted AS (
    INSERT INTO messages (event_id, conversation_id, workspace_id, direction,
        provider_message_id, sender_id, sender_name, kind, text, content, reply_to, sent_at,
        received_at, stream_seq, message_id)
    SELECT CASE WHEN e.key_hash IS NULL THEN u.event_id ELSE COALESCE(u.erased_id, u.event_id) END,
        u.conversation_id, u.workspace_id, u.direction, u.provider_message_id,
        CASE WHEN e.key_hash IS NULL THEN u.sender_id END,
        CASE WHEN e.key_hash IS NULL THEN u.sender_name END, u.kind,
        CASE WHEN e.key_hash IS NULL THEN u.text END,
        CASE WHEN e.key_hash IS NULL THEN u.content ELSE $1::jsonb END,
        u.reply_to, u.sent_at, u.received_at, u.stream_seq, u.message_id
    FROM u LEFT JOIN erased e ON e.key_hash = u.erase_hash
    ORDER BY u.stream_seq
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
SELECT event_id, NULL AS erased FROM inserted
UNION ALL
SELECT NULL, key_hash FROM erased"""

# Edits that arrived before their message, for the inbound messages just inserted: the
# latest one is applied (to an erased person's message as metadata only, as ``EDIT_SQL``),
# and all are forgotten.
_PENDING_EDITS = """
latest AS (
    SELECT DISTINCT ON (p.conversation_id, p.provider_message_id)
           p.conversation_id, p.provider_message_id, p.edited_at, p.kind, p.text, p.content
    FROM pending_edits p
    JOIN unnest(${keys}::text[], ${ids}::text[]) AS n (conversation_id, provider_message_id)
      USING (conversation_id, provider_message_id)
    ORDER BY p.conversation_id, p.provider_message_id, p.edited_at DESC
), forgotten AS (
    DELETE FROM pending_edits p USING latest l
    WHERE p.conversation_id = l.conversation_id
      AND p.provider_message_id = l.provider_message_id
), edited AS (
    UPDATE messages m SET
        text = CASE WHEN m.content = ${erased}::jsonb THEN NULL ELSE l.text END,
        content = CASE WHEN m.content = ${erased}::jsonb THEN m.content ELSE l.content END,
        kind = l.kind, edited_at = l.edited_at
    FROM latest l
    WHERE m.conversation_id = l.conversation_id
      AND m.provider_message_id = l.provider_message_id
      AND m.direction = 'in'
)"""
PENDING_EDITS_SQL = (
    "WITH"
    + _PENDING_EDITS.replace("${keys}", "$1").replace("${ids}", "$2").replace("${erased}", "$3")
    + " SELECT DISTINCT conversation_id FROM latest"
)

# The conversations' summaries, and (same statement) the last round's early edits; it
# answers the conversations whose messages those edits changed. The preview is the batch's
# newest new message that is not an erased person's when it is newer than the one shown
# (by sent_at, then stream order; none shown: any is newer).
CONVERSATION_ROWS = RowSet(
    "staged_conversations",
    (
        ("id", "text"), ("workspace_id", "text"), ("channel", "text"), ("account", "text"),
        ("chat_id", "text"), ("chat_type", "text"), ("title", "text"),
        ("first_message_at", "timestamptz"), ("last_message_at", "timestamptz"),
        ("message_count", "int"), ("last_preview", "text"), ("updated_seq", "bigint"),
        ("preview_at", "timestamptz"), ("preview_seq", "bigint"),
    ),
)  # fmt: skip
CONVERSATIONS_SQL = (
    (
        "WITH u AS ({rows}),"
        + _PENDING_EDITS.replace("${keys}", "$1").replace("${ids}", "$2")
        + """, summaries AS (
INSERT INTO conversations AS c (id, workspace_id, channel, account, chat_id, chat_type, title,
    first_message_at, last_message_at, message_count, last_preview, updated_seq, preview_at,
    preview_seq)
SELECT * FROM u
ON CONFLICT (id) DO UPDATE SET
    title = COALESCE(EXCLUDED.title, c.title),
    updated_seq = EXCLUDED.updated_seq,
    message_count = c.message_count + EXCLUDED.message_count,
    first_message_at = CASE WHEN EXCLUDED.message_count > 0
        THEN LEAST(c.first_message_at, EXCLUDED.first_message_at)
        ELSE c.first_message_at END,
    last_preview = CASE WHEN ${newer} THEN EXCLUDED.last_preview ELSE c.last_preview END,
    preview_at = CASE WHEN ${newer} THEN EXCLUDED.preview_at ELSE c.preview_at END,
    preview_seq = CASE WHEN ${newer} THEN EXCLUDED.preview_seq ELSE c.preview_seq END,
    last_message_at = CASE WHEN EXCLUDED.message_count > 0
        THEN GREATEST(c.last_message_at, EXCLUDED.last_message_at)
        ELSE c.last_message_at END
) SELECT DISTINCT conversation_id FROM latest"""
    )
    .replace("${erased}", "$3")
    .replace(
        "${newer}",
        "COALESCE((EXCLUDED.preview_at, EXCLUDED.preview_seq) > (c.preview_at, c.preview_seq),"
        " EXCLUDED.preview_seq IS NOT NULL)",
    )
)

# A conversation's preview, from its messages: that of the newest (by sent_at, then stream
# order) neither deleted nor an erased person's, or none. What an insert shows (``Row.short``)
# reads the same from the row it writes. Set where a message was edited, deleted or
# erased, or a chat moved: the rule depends on the messages only, so the previews are the
# same whatever the batches and whenever an erasure (another stream) was applied. Only
# for conversations where something changed: without the deferred messages_by_conversation
# index (a rebuild), the newest is found among the conversation's rows through its unique
# index.
PREVIEW_SQL = """
UPDATE conversations c SET last_preview = n.preview, preview_at = n.sent_at,
    preview_seq = n.stream_seq
FROM unnest($1::text[]) AS t (id) LEFT JOIN LATERAL (
    SELECT left(CASE WHEN m.kind = 'callback' AND m.direction = 'in'
                     THEN '[button: ' || coalesce(m.text, '') || ']'
                     ELSE coalesce(nullif(m.text, ''), '[' || m.kind || ']') END, 200) AS preview,
           m.sent_at, m.stream_seq
    FROM messages m
    WHERE m.conversation_id = t.id AND m.deleted_at IS NULL AND m.content <> $2::jsonb
    ORDER BY m.sent_at DESC, m.stream_seq DESC LIMIT 1
) n ON true
WHERE c.id = t.id AND (c.last_preview, c.preview_at, c.preview_seq)
    IS DISTINCT FROM (n.preview, n.sent_at, n.stream_seq)"""

# An edit applies to the inbound message unless it was deleted or already edited later;
# when that message is not there yet, it waits in pending_edits with its author's erasure
# hash. To an erased person's message (blanked on insert or by the erasure) it applies as
# metadata only, its kind and time, never its text: the row ends the same whether the
# erasure came before the edit or after it (live, or a rebuild replaying CRM first or last),
# and no text comes back. An erased person's edit waits blanked, as the erasure blanks
# those already waiting. (The EXISTS sees the table as it was before the UPDATE, which
# changes no row's existence.) Customers edit their own messages only: a reply of ours that
# shares the provider id is never touched.
EDIT_SQL = """
WITH updated AS (
    UPDATE messages SET text = CASE WHEN content = $7::jsonb THEN NULL ELSE $3 END,
        content = CASE WHEN content = $7::jsonb THEN content ELSE $4::jsonb END,
        kind = $5, edited_at = $6
    WHERE conversation_id = $1 AND provider_message_id = $2 AND direction = 'in'
      AND deleted_at IS NULL AND (edited_at IS NULL OR edited_at < $6)
)
INSERT INTO pending_edits (conversation_id, provider_message_id, edited_at, kind, text,
    content, erase_hash)
SELECT $1, $2, $6, $5, CASE WHEN e.key_hash IS NULL THEN $3 END,
    CASE WHEN e.key_hash IS NULL THEN $4::jsonb ELSE $7::jsonb END, $8
FROM (SELECT $8::text AS erase_hash) AS a
LEFT JOIN erased_identities e ON e.key_hash = a.erase_hash
WHERE NOT EXISTS (SELECT 1 FROM messages
                  WHERE conversation_id = $1 AND provider_message_id = $2 AND direction = 'in')
ON CONFLICT DO NOTHING"""

# A migration moves the conversation row (merged into the new chat's row if messages there
# were projected first; ``PREVIEW_SQL`` then sets its preview) and its messages and early
# edits; replayed, the old row is gone and nothing happens. A message whose provider id the
# new conversation already holds stays behind rather than break the unique key (Telegram
# numbers a supergroup's messages anew).
MIGRATE_SQL = """
WITH old AS (
    DELETE FROM conversations WHERE id = $1 RETURNING *
), moved AS (
    UPDATE messages m SET conversation_id = $2
    WHERE m.conversation_id = $1 AND NOT EXISTS (
        SELECT 1 FROM messages x WHERE x.conversation_id = $2 AND x.direction = m.direction
            AND x.provider_message_id = m.provider_message_id)
), pending AS (
    UPDATE pending_edits SET conversation_id = $2 WHERE conversation_id = $1
)
INSERT INTO conversations AS c (id, workspace_id, channel, account, chat_id, chat_type, title,
    first_message_at, last_message_at, message_count, last_preview, updated_seq, preview_at,
    preview_seq)
SELECT $2, workspace_id, channel, account, $3, $4, title, first_message_at, last_message_at,
    message_count, last_preview, $5::bigint, preview_at, preview_seq
FROM old
ON CONFLICT (id) DO UPDATE SET
    title = COALESCE(c.title, EXCLUDED.title),
    message_count = c.message_count + EXCLUDED.message_count,
    first_message_at = LEAST(c.first_message_at, EXCLUDED.first_message_at),
    last_preview = CASE WHEN EXCLUDED.last_message_at > c.last_message_at
        THEN EXCLUDED.last_preview ELSE c.last_preview END,
    last_message_at = GREATEST(c.last_message_at, EXCLUDED.last_message_at),
    updated_seq = EXCLUDED.updated_seq"""

# A deletion keeps an erased person's message reading "erased" (the erasure turns a deleted
# one into that too): only its deleted_at is recorded, whichever came first.
DELETE_SQL = """
UPDATE messages SET text = NULL, deleted_at = $3,
    content = CASE WHEN content = $4::jsonb THEN content ELSE '{"kind": "deleted"}'::jsonb END
WHERE conversation_id = $1 AND provider_message_id = ANY($2::text[]) AND deleted_at IS NULL"""


async def insert_messages(conn: Conn, rows: list[Row]) -> tuple[set[str], set[str]]:
    """Insert a round's messages: (event ids that were new, erasure hashes among them)."""
    if not rows:
        return set(), set()
    await keys.note_shredded(
        conn,
        {
            r.erase_hash
            for r in rows
            if r.erase_hash is not None and (pii.is_erased(r.cols[5]) or pii.is_erased(r.chat_id))
        },
    )
    # The keyed ids erased messages take, computed only for people erased already (the
    # statement names them only after it ran): one indexed lookup instead of an HMAC per
    # replayed message.
    people = list({r.erase_hash for r in rows if r.erase_hash is not None})
    maybe = (
        {
            rec["key_hash"]
            for rec in await conn.fetch(
                "SELECT key_hash FROM erased_identities WHERE key_hash = ANY($1::text[])",
                people,
            )
        }
        if people
        else set()
    )
    renamed = {keys.erased_event_id(r.event_id): r.event_id for r in rows if r.erase_hash in maybe}
    records = [
        (*r.cols, r.erase_hash, keys.erased_event_id(r.event_id) if r.erase_hash in maybe else None)
        for r in rows
    ]
    new, erased = set(), set()
    for rec in await MESSAGE_ROWS.fetch(conn, INSERT_SQL, records, ERASED_CONTENT):
        if rec["event_id"] is not None:
            new.add(renamed.get(rec["event_id"], rec["event_id"]))
        else:
            erased.add(rec["erased"])
    return new, erased


@dataclass(slots=True)
class _Summary:
    """What a batch's inserts do to one conversation (see ``_conversations``)."""

    first: Row
    count: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    title: str | None = None
    seq: int = 0
    chat_id: str = ""
    source: Row | None = None  # the newest new message that is not an erased person's


async def _conversations(
    conn: Conn,
    rows: list[Row],
    new: set[str],
    erased: set[str],
    waiting: list[Key],
    edits: dict[Key, Edit],
) -> set[str]:
    """One upsert per conversation, with what one-by-one application would have done: the
    row exists from its first event; counts and first/last times change only for messages
    that were new; the preview is the newest new message's (by sent_at, later events
    winning ties), as its last edit in the batch left it, unless an older one is shown; the
    last non-null title wins. An erased sender's message is no preview, and brings no title
    in their one-to-one chat (a group's title is the group's, and the erasure keeps it).
    Answers the conversations whose messages the last round's early edits changed."""
    if not rows:
        return set()
    new = set(new)
    convs: dict[str, _Summary] = {}
    for r in rows:
        conv = r.key[0]
        blank = r.erase_hash in erased
        title = None if blank and r.private else r.title
        c = convs.get(conv)
        if c is None:
            c = convs[conv] = _Summary(r, chat_id=r.chat_id)
        if blank and r.private and r.erase_hash is not None:
            c.chat_id = keys.erased_marker(r.erase_hash)  # the chat id is the person's identity
        c.seq = r.seq
        if title is not None:
            c.title = title
        if r.event_id not in new:
            continue
        new.discard(r.event_id)  # a duplicate inside the batch counts once
        sent_at = r.sent_at
        c.first_at = sent_at if c.first_at is None else min(c.first_at, sent_at)
        c.last_at = sent_at if c.last_at is None else max(c.last_at, sent_at)
        c.count += 1
        if not blank and (c.source is None or sent_at >= c.source.sent_at):
            c.source = r
    records = [
        (
            conv,
            v.first.cols[2],
            v.first.channel,
            v.first.account,
            v.chat_id,
            v.first.chat_type,
            v.title,
            v.first_at or v.first.sent_at,
            v.last_at or v.first.sent_at,
            v.count,
            _preview(v.source, edits),
            v.seq,
            v.source.sent_at if v.source else None,
            v.source.seq if v.source else None,
        )
        for conv, v in convs.items()
    ]
    recs = await CONVERSATION_ROWS.fetch(
        conn, CONVERSATIONS_SQL, records, *_keys(waiting), ERASED_CONTENT
    )
    return {rec["conversation_id"] for rec in recs}


def _preview(source: Row | None, edits: dict[Key, Edit]) -> str | None:
    """What the message shown reads as: its own preview, or its last edit's in the batch."""
    if source is None:
        return None
    edit = edits.get(source.key) if source.cols[3] == "in" else None
    return source.short if edit is None else edit.short


async def _change(conn: Conn, changes: list[Edit | Delete]) -> None:
    """Apply edits and deletions in order, each run of one kind as one pipelined call."""
    start = 0
    while start < len(changes):
        kind = type(changes[start])
        end = start
        while end < len(changes) and type(changes[end]) is kind:
            end += 1
        await conn.executemany(
            EDIT_SQL if kind is Edit else DELETE_SQL, [c.params for c in changes[start:end]]
        )
        start = end
