"""Read queries of the CRM API, with keyset (cursor) pagination scoped to a workspace."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, Field

from switchboard.crm.errors import CrmServiceError
from switchboard.runtime.db import Conn


class BadCursorError(CrmServiceError, ValueError):
    """The cursor was not produced by this API."""


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError, RecursionError):  # anything a caller can send
        raise BadCursorError("cursor is not valid") from None
    if not isinstance(values, list) or len(values) != size:
        raise BadCursorError("cursor is not valid")
    return values


def _row(record: asyncpg.Record) -> dict[str, Any]:
    out = {}
    for key, value in record.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        elif key in ("content", "attributes") and isinstance(value, str):
            value = json.loads(value)
        out[key] = value
    return out


async def _rows(conn: Conn, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Every row of a query, as the API answers it (:func:`_row`)."""
    return [_row(r) for r in await conn.fetch(sql, *args)]


async def conversation_exists(conn: Conn, workspace: str, conversation_id: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM conversations WHERE id = $1 AND workspace_id = $2",
        conversation_id,
        workspace,
    )
    return bool(found)


def _page(rows: list[asyncpg.Record], limit: int, *cursor_cols: str) -> dict[str, Any]:
    items = [_row(r) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return {
        "items": items,
        "next_cursor": encode_cursor(*(last[c] for c in cursor_cols)) if last else None,
    }


class Filters:
    """Builds a WHERE clause with numbered parameters."""

    def __init__(self, workspace: str, column: str = "workspace_id") -> None:
        self.args: list[Any] = [workspace]
        self.where = [f"{column} = $1"]

    def add(self, clause: str, *values: Any) -> None:
        """``clause`` uses ``{}`` placeholders, filled with the next parameter numbers."""
        numbers = []
        for value in values:
            self.args.append(value)
            numbers.append(f"${len(self.args)}")
        self.where.append(clause.format(*numbers))

    def add_given(self, clauses: dict[str, Any]) -> None:
        """:meth:`add` each one-parameter clause whose value was given (optional query
        parameters: None or empty leaves the list unfiltered by it)."""
        for clause, value in clauses.items():
            if value:
                self.add(clause, value)

    def sql(self) -> str:
        return " AND ".join(self.where)


@dataclass(frozen=True)
class Keyset:
    """The two columns a list is ordered by and resumes after: a time, then a tie-breaker
    (``alias.column``; the page's rows name them without the alias)."""

    at: str
    tie: str
    descending: bool = True
    tie_is_int: bool = False


def resume_after(cursor: str, keys: Keyset) -> tuple[datetime, Any]:
    """The position a cursor names (BadCursorError: not one this API made for ``keys``)."""
    at, tie = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(at), int(tie) if keys.tie_is_int else str(tie)
    except (TypeError, ValueError):
        raise BadCursorError("cursor is not valid") from None


async def _keyset_page(
    conn: Conn, select: str, f: Filters, keys: Keyset, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of ``select`` (a query up to its WHERE) filtered by ``f``, in ``keys``
    order, starting after ``cursor``."""
    if cursor:
        later = "<" if keys.descending else ">"
        f.add(f"({keys.at}, {keys.tie}) {later} ({{}}, {{}})", *resume_after(cursor, keys))
    f.args.append(limit + 1)
    order = " DESC" if keys.descending else ""
    rows = await conn.fetch(
        f"""{select} WHERE {f.sql()}
            ORDER BY {keys.at}{order}, {keys.tie}{order} LIMIT ${len(f.args)}""",
        *f.args,
    )
    return _page(list(rows), limit, keys.at.split(".")[-1], keys.tie.split(".")[-1])


@dataclass(frozen=True)
class Where:
    """The clause a list filter adds when given (``{}`` is its value), declared beside it."""

    clause: str


class Page(BaseModel):
    """A list request's page: its size and the cursor it resumes after. The list requests
    below are the API's query parameters, declared once for the route and the query, each
    filter with the clause it adds."""

    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = None

    def filtered(self, workspace: str, column: str = "workspace_id") -> Filters:
        """The workspace's rows, narrowed by each filter given (:meth:`Filters.add_given`)."""
        f = Filters(workspace, column)
        f.add_given(
            {
                meta.clause: getattr(self, name)
                for name, info in type(self).model_fields.items()
                for meta in info.metadata
                if isinstance(meta, Where)
            }
        )
        return f


class InboxQuery(Page):
    channel: Annotated[str | None, Where("c.channel = {}")] = None
    account: Annotated[str | None, Where("c.account = {}")] = None
    updated_since: Annotated[datetime | None, Where("c.last_message_at >= {}")] = None
    text: Annotated[
        str | None,
        Where("""EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id
                 AND m.search @@ plainto_tsquery('simple', {}))"""),
    ] = None
    contact_id: Annotated[str | None, Where("COALESCE(ct.merged_into, i.contact_id) = {}")] = None


class ContactsQuery(Page):
    channel: Annotated[
        str | None,
        Where("""EXISTS (SELECT 1 FROM contact_identities i WHERE i.contact_id = contacts.id
                 AND i.channel = {})"""),
    ] = None
    updated_since: Annotated[datetime | None, Where("updated_at >= {}")] = None
    text: str | None = None  # part of a name or phone: its clause takes it twice (contacts)
    tag: Annotated[str | None, Where("{} = ANY(tags)")] = None


class LeadsQuery(Page):
    stage: Annotated[str | None, Where("stage = {}")] = None
    assignee: Annotated[str | None, Where("assignee = {}")] = None
    channel: Annotated[str | None, Where("source_channel = {}")] = None
    updated_since: Annotated[datetime | None, Where("updated_at >= {}")] = None
    contact_id: Annotated[str | None, Where("contact_id = {}")] = None


CONVERSATION_COLUMNS = """c.id, c.channel, c.account, c.chat_id, c.chat_type, c.title,
    c.first_message_at, c.last_message_at, c.message_count, c.last_preview,
    COALESCE(ct.merged_into, i.contact_id) AS contact_id"""
# Whose a private chat ``c`` is: on most channels its id is the person's; a generic source
# names its chats apart from their senders (``data.chat_id`` beside ``data.sender.id``), so
# there it is the sender of the chat's first inbound message (one index probe; the lateral
# is skipped on other channels). ``chat_person`` is the identity's external id.
CHAT_PERSON = """LEFT JOIN LATERAL (
        SELECT m.sender_id FROM messages m
        WHERE c.channel = 'generic' AND m.conversation_id = c.id AND m.direction = 'in'
        ORDER BY m.sent_at, m.stream_seq LIMIT 1) first_in ON true
    CROSS JOIN LATERAL (SELECT COALESCE(first_in.sender_id, c.chat_id) AS chat_person) person"""
CONVERSATION_JOINS = f"""FROM conversations c
    {CHAT_PERSON}
    LEFT JOIN contact_identities i ON i.workspace_id = c.workspace_id
        AND i.channel = c.channel AND i.external_id = person.chat_person
    LEFT JOIN contacts ct ON ct.id = i.contact_id"""


async def inbox(conn: Conn, workspace: str, q: InboxQuery) -> dict[str, Any]:
    """Conversations across all accounts, most recent first, with their contact."""
    f = q.filtered(workspace, "c.workspace_id")
    select = f"SELECT {CONVERSATION_COLUMNS} {CONVERSATION_JOINS}"
    keys = Keyset("c.last_message_at", "c.id")
    return await _keyset_page(conn, select, f, keys, limit=q.limit, cursor=q.cursor)


MESSAGE_COLUMNS = """SELECT m.event_id AS id, m.direction, m.message_id, m.provider_message_id,
    m.sender_id, m.sender_name, m.kind, m.text, m.content, m.reply_to, m.sent_at,
    m.received_at, m.edited_at, m.deleted_at, m.stream_seq, m.conversation_id,
    COALESCE(
        (SELECT s.status FROM (VALUES (d.status, d.rank), (r.status, r.rank)) s(status, rank)
         WHERE s.status IS NOT NULL ORDER BY s.rank DESC LIMIT 1),
        CASE WHEN m.direction = 'out' THEN 'sent' END) AS status,
    COALESCE(r.reason, d.reason) AS failure_reason"""
# The message with its conversation and delivery state, from ``{}`` (the messages table, or
# a page of it already chosen: the joins then run for that page only).
MESSAGE_JOINS = """FROM {} m
JOIN conversations c ON c.id = m.conversation_id
LEFT JOIN deliveries d ON d.workspace_id = m.workspace_id AND d.message_id = m.message_id
LEFT JOIN receipts r ON m.direction = 'out' AND r.workspace_id = m.workspace_id
    AND r.channel = c.channel AND r.account = c.account
    AND r.provider_message_id = m.provider_message_id AND r.recipient = c.chat_id"""
MESSAGE_SELECT = f"{MESSAGE_COLUMNS}\n{MESSAGE_JOINS.format('messages')}"


async def conversation_messages(
    conn: Conn,
    workspace: str,
    conversation_id: str,
    *,
    limit: int,
    cursor: str | None,
    text: str | None = None,
) -> dict[str, Any]:
    f = Filters(workspace, "m.workspace_id")
    f.add("m.conversation_id = {}", conversation_id)
    f.add_given({"m.search @@ plainto_tsquery('simple', {})": text})
    keys = Keyset("m.sent_at", "m.stream_seq", descending=False, tie_is_int=True)
    return await _keyset_page(conn, MESSAGE_SELECT, f, keys, limit=limit, cursor=cursor)


# A word in at least 1 of SEARCH_WALK_PER_ROW messages of the table (Postgres' statistics of
# the search column) is looked for among the workspace's newest messages, read in order up
# to SEARCH_WALK_PER_ROW per row of the page; a rarer one, or a page those do not fill,
# through the full-text index. 200,000 messages, page of 100 (docs/benchmark-notes.md):
# "load" (every message) 121 -> 1.6 ms.
SEARCH_WALK_PER_ROW = 20
NEWEST_FIRST = "m.sent_at DESC, m.stream_seq DESC"
# Whether every word of {text} is in at least {share} of the messages, by the table's
# statistics (a word too rare to be among its most common elements counts as 0). A table
# not analyzed yet (new, or rebuilt, until autovacuum reaches it) has none: its words count
# as common, since the walk is bounded and a rare word only costs it before the index, while
# sorting every match of a common word grew with the table (no statistics, a word in every
# message: 3.5 ms at 5,000 messages, 10.8 ms at 20,000, against 1.2-1.7 ms walking).
_SEARCH_STATS = """FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'messages'
                 AND attname = 'search'"""
_COMMON_WORDS = f"""SELECT NOT EXISTS (SELECT 1 {_SEARCH_STATS})
    OR coalesce(min(coalesce(s.freq, 0)), 0) >= {{share}}
    FROM unnest(tsvector_to_array(to_tsvector('simple', {{text}}))) AS w (word)
    LEFT JOIN (SELECT unnest(most_common_elems::text::text[]) AS word,
                      unnest(most_common_elem_freqs) AS freq
               {_SEARCH_STATS}) s USING (word)"""


async def search_messages(
    conn: Conn, workspace: str, text: str, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """Full-text search over every message of the workspace, newest first."""
    sql, args = search_statement(workspace, text, limit=limit, cursor=cursor)
    rows = await conn.fetch(sql, *args)
    return _page(list(rows), limit, "sent_at", "stream_seq")


def search_statement(
    workspace: str, text: str, *, limit: int, cursor: str | None
) -> tuple[str, list[Any]]:
    """The search's statement and its arguments (``limit`` + 1 rows, newest first).

    One statement chooses the page among the newest messages (an ordered walk of at most
    ``SEARCH_WALK_PER_ROW`` rows per row of the page) when the words are common, and through
    the full-text index (a top-N sort of every match) otherwise or when the walk found less
    than a page. The planner alone walked the ordered index for rare words too and read the
    whole workspace (15-20x slower than the full-text index), and sorted every match of a
    common one (121 ms at 200,000 messages). The joins run for the page only."""
    f = Filters(workspace, "m.workspace_id")
    f.add("m.search @@ plainto_tsquery('simple', {})", text)
    matching = f.where.pop()
    after = "TRUE"
    if cursor:
        keys = Keyset("m.sent_at", "m.stream_seq", tie_is_int=True)
        f.add("(m.sent_at, m.stream_seq) < ({}, {})", *resume_after(cursor, keys))
        after = f.where.pop()
    n = limit + 1
    f.args += [1 / SEARCH_WALK_PER_ROW, n * SEARCH_WALK_PER_ROW, n]
    common, walk, page = (f"${len(f.args) - i}" for i in (2, 1, 0))
    words = _COMMON_WORDS.format(text="$2", share=common)
    # Each part runs only when its gate (an InitPlan, evaluated once) lets it. The matches
    # are read without an order (OFFSET 0 keeps the page's ordering and the cursor out of
    # their scan): the full-text index alone, never a range of the ordered one beside it,
    # which a cached generic plan did (8 ms more at 200,000 messages).
    sql = f"""WITH newest AS (
        SELECT m.* FROM (SELECT * FROM messages m WHERE ({words}) AND {f.sql()} AND {after}
                         ORDER BY {NEWEST_FIRST} LIMIT {walk}) m
        WHERE {matching} ORDER BY {NEWEST_FIRST} LIMIT {page}
    ), chosen AS (
        SELECT * FROM newest WHERE (SELECT count(*) FROM newest) = {page}
        UNION ALL
        (SELECT * FROM (SELECT * FROM messages m
                        WHERE (SELECT count(*) FROM newest) < {page} AND {f.sql()}
                          AND {matching} OFFSET 0) m
         WHERE {after} ORDER BY {NEWEST_FIRST} LIMIT {page})
    )
    {MESSAGE_COLUMNS}
    {MESSAGE_JOINS.format("chosen")}
    ORDER BY {NEWEST_FIRST}"""
    return sql, f.args


def like_literal(text: str) -> str:
    """``text`` for a LIKE pattern, matching itself: ``%`` and ``_`` are characters a person
    types ("100%", "ann_b"), not wildcards (backslash is LIKE's default escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def contacts(conn: Conn, workspace: str, q: ContactsQuery) -> dict[str, Any]:
    f = q.filtered(workspace)
    f.where.append("merged_into IS NULL AND NOT erased")
    if q.text:
        typed = f"%{like_literal(q.text)}%"
        f.add("(display_name ILIKE {} OR phone LIKE {})", typed, typed)
    select = """SELECT id, display_name, phone, attributes, tags, source_channel, created_at,
                       updated_at, version
                FROM contacts"""
    keys = Keyset("updated_at", "id")
    return await _keyset_page(conn, select, f, keys, limit=q.limit, cursor=q.cursor)


async def _detail(
    conn: Conn, sql: str, id: str, workspace: str, lists: dict[str, str]
) -> dict[str, Any] | None:
    """One row of the workspace by id (``sql`` takes the id, then the workspace), with each
    of ``lists``: a query over that id whose rows it holds under that name."""
    row = await conn.fetchrow(sql, id, workspace)
    if row is None:
        return None
    out = _row(row)
    for name, rows_sql in lists.items():
        out[name] = await _rows(conn, rows_sql, id)
    return out


async def merged_into(conn: Conn, workspace: str, ids: Sequence[str]) -> dict[str, str]:
    """Which of ``ids`` the read model shows merged into another contact, and into which."""
    rows = await conn.fetch(
        """SELECT id, merged_into FROM contacts
           WHERE workspace_id = $1 AND id = ANY($2::text[]) AND merged_into IS NOT NULL""",
        workspace,
        list(ids),
    )
    return {str(r["id"]): str(r["merged_into"]) for r in rows}


async def contact(conn: Conn, workspace: str, contact_id: str) -> dict[str, Any] | None:
    return await _detail(
        conn,
        """SELECT id, display_name, phone, attributes, tags, source_channel, merged_into,
                  erased, created_at, updated_at, version
           FROM contacts WHERE id = $1 AND workspace_id = $2""",
        contact_id,
        workspace,
        {
            "identities": """SELECT channel, external_id, account, username, phone
                FROM contact_identities WHERE contact_id = $1 ORDER BY channel, external_id""",
            "notes": """SELECT note, author, at
                FROM contact_notes WHERE contact_id = $1 ORDER BY seq""",
            "leads": """SELECT id, stage, assignee, value, updated_at
                FROM leads WHERE contact_id = $1 ORDER BY id""",
        },
    )


LEAD_COLUMNS = """id, contact_id, stage, source_channel, campaign_id, value, currency, assignee,
    created_at, updated_at, version, referral_source, referral_campaign, click_id"""


async def leads(conn: Conn, workspace: str, q: LeadsQuery) -> dict[str, Any]:
    f = q.filtered(workspace)
    select = f"SELECT {LEAD_COLUMNS} FROM leads"
    keys = Keyset("updated_at", "id")
    return await _keyset_page(conn, select, f, keys, limit=q.limit, cursor=q.cursor)


async def lead(conn: Conn, workspace: str, lead_id: str) -> dict[str, Any] | None:
    return await _detail(
        conn,
        f"SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1 AND workspace_id = $2",
        lead_id,
        workspace,
        {
            "history": """SELECT from_stage, to_stage, author AS by, reason, at
                FROM lead_stage_history WHERE lead_id = $1 ORDER BY seq""",
        },
    )


async def user_accounts(
    conn: Conn, workspace: str, *, status: str | None = None
) -> list[dict[str, Any]]:
    """Each user-account session of ``workspace`` with its latest status, by session id."""
    f = Filters(workspace)
    if status is not None:
        f.add("status = {}", status)
    return await _rows(
        conn,
        "SELECT session_id, status, reason, error_code, until, since FROM user_accounts"
        f" WHERE {f.sql()} ORDER BY session_id",
        *f.args,
    )


async def projected_to(conn: Conn, projection: str) -> int:
    seq = await conn.fetchval("SELECT seq FROM checkpoints WHERE projection = $1", projection)
    return int(seq or 0)


async def message_files(conn: Conn, workspace: str, message_id: str) -> dict[str, Any] | None:
    """A message of the workspace, named by its id or (ours) by the caller's outbound
    ``message_id``, with its channel, account and content (None: not the workspace's)."""
    columns = (
        "m.event_id AS id, m.direction, m.kind, m.content, c.channel, c.account, c.chat_id,"
        " m.provider_message_id"
    )
    row = await conn.fetchrow(
        f"""(SELECT {columns} FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.event_id = $1 AND m.workspace_id = $2)
           UNION ALL
           (SELECT {columns} FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.message_id = $1 AND m.workspace_id = $2)
           LIMIT 1""",
        message_id,
        workspace,
    )
    return None if row is None else _row(row)
