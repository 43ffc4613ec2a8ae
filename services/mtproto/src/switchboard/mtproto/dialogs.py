"""Dialogs listing and contact search, over the bus and the API.

Both need the session's live connection, which only its lease holder has: a caller (the
API on any instance, or anyone on the bus) publishes ``cmd.mtproto.list_dialogs`` /
``cmd.mtproto.search_contacts``; the holder pulls them from the session's own durable
consumer (like sends) and answers with ``mtproto.dialogs_listed`` /
``mtproto.contacts_found`` naming the command's ce-id, or ``mtproto.command_rejected``.
The holder also keeps the answer briefly in ``query_answers``, where the API (on any
instance, with no subscription rights on the bus) waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import asyncpg
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from switchboard.events import Decoded, DecodeError, Event, decode_message, model_for
from switchboard.events.catalog.mtproto import (
    CommandRejected,
    ContactFound,
    ContactsFound,
    DialogInfo,
    DialogsListed,
    ListDialogs,
    SearchContacts,
)
from switchboard.mtproto import holder_serve
from switchboard.mtproto.convert import chat_of
from switchboard.mtproto.ports import FloodWaitError, MtprotoError, Peer
from switchboard.runtime.bus import Bus
from switchboard.runtime.dlq import dead_letter_msg

STREAM = holder_serve.STREAM
COMMANDS = ("list_dialogs", "search_contacts")
# A query nobody can still be waiting for is answered as expired instead of being run.
MAX_AGE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Dialog:
    """One of the account's dialogs, as the adapter reads it."""

    peer: Peer
    top_message_id: int = 0
    top_message_at: datetime | None = None
    unread_count: int = 0


@dataclass(frozen=True, slots=True)
class Found:
    """A contact search hit; ``mine``: the account is already in that chat."""

    peer: Peer
    mine: bool = False


@runtime_checkable
class Directory(Protocol):
    """What a client offers for dialogs and search (the Telethon adapter does)."""

    async def get_dialogs(self, limit: int = 100) -> list[Dialog]: ...

    async def search_contacts(self, query: str, limit: int = 20) -> list[Found]: ...


def query_consumer(session_id: str) -> str:
    return f"mtproto-query-{session_id}"


def query_subjects(session_id: str) -> list[str]:
    return [f"cmd.mtproto.{name}.v1.{session_id}" for name in COMMANDS]


def dialogs_listed(session_id: str, command_id: str, dialogs: list[Dialog]) -> DialogsListed:
    return DialogsListed(
        session_id=session_id,
        at=datetime.now(UTC),
        command_id=command_id,
        dialogs=[
            DialogInfo(
                chat=chat_of(d.peer),
                top_message_id=d.top_message_id,
                top_message_at=d.top_message_at,
                unread_count=d.unread_count,
            )
            for d in dialogs
        ],
    )


def contacts_found(
    session_id: str, command_id: str, query: str, found: list[Found]
) -> ContactsFound:
    return ContactsFound(
        session_id=session_id,
        at=datetime.now(UTC),
        command_id=command_id,
        query=query,
        results=[ContactFound(chat=chat_of(f.peer), mine=f.mine) for f in found],
    )


ANSWERS_KEPT = timedelta(hours=1)


class Answers:
    """Answers to queries, kept for an hour for whoever waits for them."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def put(self, session_id: str, command_id: str, event: Event) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM query_answers WHERE at < $1", datetime.now(UTC) - ANSWERS_KEPT
            )
            await conn.execute(
                """INSERT INTO query_answers (command_id, session_id, name, body)
                   VALUES ($1, $2, $3, $4) ON CONFLICT (command_id) DO NOTHING""",
                command_id,
                session_id,
                event.name,
                event.model_dump_json(),
            )

    async def get(self, command_id: str, session_id: str | None = None) -> Event | None:
        """The answer to ``command_id`` (of ``session_id`` only, when given)."""
        row = await self.pool.fetchrow(
            """SELECT name, body FROM query_answers
               WHERE command_id = $1 AND ($2::text IS NULL OR session_id = $2)""",
            command_id,
            session_id,
        )
        if row is None:
            return None
        model = model_for(row["name"], 1)
        found = model.model_validate_json(row["body"])
        assert isinstance(found, Event)
        return found


async def forget(bus: Bus, session_id: str) -> None:
    """Delete a session's query queue (at logout)."""
    with contextlib.suppress(Exception):
        await bus.js.delete_consumer(STREAM, query_consumer(session_id))


@dataclass
class QueryServer:
    """Answers one session's queries while its holder is connected."""

    bus: Bus
    answers: Answers
    session_id: str
    workspace_id: str
    client: object
    on_query: Callable[[], None] | None = None  # the session was used (ttl.py)
    # Judges a query's age against the time the server stored it: the server's clock in
    # the service, never the asking instance's (``Runtime.clock``).
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def _rejected(self, command_id: str, command: str, status: int, reason: str) -> Event:
        return CommandRejected(
            session_id=self.session_id,
            at=datetime.now(UTC),
            command_id=command_id,
            command=command,
            status=status,
            reason=reason,
        )

    async def answer(self, decoded: Decoded, stored_at: datetime) -> Event:
        """The event answering one decoded query, which the stream stored at ``stored_at``."""
        cmd, envelope = decoded.model, decoded.envelope
        if self.on_query is not None:
            self.on_query()
        if envelope.workspace_id != self.workspace_id:
            # Another workspace's session does not exist for it.
            return self._rejected(envelope.id, cmd.name, 404, f"no session {self.session_id!r}")
        if self.now() - stored_at > MAX_AGE:
            return self._rejected(envelope.id, cmd.name, 408, "the query expired unanswered")
        client = self.client
        if not isinstance(client, Directory):
            return self._rejected(envelope.id, cmd.name, 501, "the adapter cannot list dialogs")
        try:
            if isinstance(cmd, ListDialogs):
                found = await client.get_dialogs(cmd.limit)
                return dialogs_listed(self.session_id, envelope.id, found)
            assert isinstance(cmd, SearchContacts)
            hits = await client.search_contacts(cmd.query, cmd.limit)
            return contacts_found(self.session_id, envelope.id, cmd.query, hits)
        except FloodWaitError as exc:
            return self._rejected(
                envelope.id, cmd.name, 429, f"Telegram asks to wait {exc.seconds} s"
            )
        except MtprotoError as exc:
            if exc.reason in ("DISCONNECTED",) or exc.reason.startswith("AUTH_KEY"):
                raise  # the connection is gone: the command is redelivered to the next holder
            return self._rejected(envelope.id, cmd.name, 400, f"Telegram answered {exc.reason}")

    async def handle(self, msg: Msg) -> None:
        try:
            decoded = decode_message(msg.subject, dict(msg.headers or {}), msg.data)
            if not isinstance(decoded.model, ListDialogs | SearchContacts):
                raise DecodeError(f"{type(decoded.model).__name__} is not a directory query")
        except DecodeError as exc:
            await dead_letter_msg(
                self.bus, msg, reason=exc.reason, consumer=query_consumer(self.session_id)
            )
            await msg.term()
            await holder_serve.erase(self.bus, msg)
            return
        try:
            event = await self.answer(decoded, msg.metadata.timestamp)
        except MtprotoError:
            await msg.nak()
            raise
        await self.bus.publish(event, cause=decoded.envelope)
        await self.answers.put(self.session_id, decoded.envelope.id, event)
        await holder_serve.done(self.bus, msg)

    async def run(self) -> None:
        """Pull and answer queries until cancelled (the connection's work ends)."""
        config = holder_serve.consumer(
            query_consumer(self.session_id),
            60.0,
            DeliverPolicy.ALL,
            subjects=query_subjects(self.session_id),
            inactive_threshold=7 * 24 * 3600.0,
        )
        await holder_serve.serve(self.bus, config, 1, self.handle)


async def ask(
    bus: Bus,
    answers: Answers,
    query: ListDialogs | SearchContacts,
    workspace_id: str,
    command_id: str,
    wait_s: float,
) -> Event | None:
    """Publish a query and wait for its answer (None after ``wait_s``): the API's side."""
    await bus.publish(query, id=command_id, workspace_id=workspace_id)
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        found = await answers.get(command_id)
        if found is not None:
            return found
        if asyncio.get_running_loop().time() >= deadline:
            return None
        await asyncio.sleep(0.1)
