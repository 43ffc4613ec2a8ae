"""What the gateway keeps per session besides the session itself (Postgres): the peers it
reads with the last message id seen in each, backfill jobs with their checkpoints, the chat
of private messages (for deletions), the record of sends as a user, and where its update
sequences stood (for the difference after a reconnect)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from switchboard.mtproto.convert import peer_from_json, peer_json
from switchboard.mtproto.ports import Peer, UpdateState
from switchboard.runtime.db import from_row
from switchboard.runtime.failures import stored_for_sure


@dataclass(frozen=True)
class Subscription:
    session_id: str
    ref: str
    status: str  # pending | active | failed
    chat_id: str | None
    peer: Peer | None
    last_seen_id: int
    reason: str | None = None
    command_id: str | None = None
    joined: bool = False  # subscribing made the account a member: unsubscribing leaves

    @property
    def followed(self) -> bool:
        """Made by :meth:`StateStore.follow` (a private chat written to), not asked for by a
        subscribe command (which always names itself)."""
        return self.command_id is None

    def public(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "status": self.status,
            "chat_id": self.chat_id,
            "title": self.peer.title if self.peer else None,
            "username": self.peer.username if self.peer else None,
            "last_seen_id": self.last_seen_id,
            "reason": self.reason,
            "followed": self.followed,
            "joined": self.joined,
        }


@dataclass(frozen=True)
class BackfillJob:
    job_id: str
    session_id: str
    workspace_id: str
    ref: str
    status: str  # pending | running | completed | failed
    chat_id: str | None
    peer: Peer | None
    offset_id: int
    fetched: int
    max_messages: int | None
    until: datetime | None
    resume_at: datetime | None
    reason: str | None

    def public(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "session_id": self.session_id,
            "peer": self.ref,
            "chat_id": self.chat_id,
            "status": self.status,
            "fetched": self.fetched,
            "offset_id": self.offset_id,
            "max_messages": self.max_messages,
            "until": self.until.isoformat() if self.until else None,
            "resume_at": self.resume_at.isoformat() if self.resume_at else None,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class SendRecord:
    message_id: str
    session_id: str
    status: str  # sending | sent | failed
    provider_message_id: str | None
    attempts: int
    reason: str | None
    updated_at: datetime | None = None
    outcome_published: bool = True
    fingerprint: str | None = None  # of the body the id was first used with (None: before 007)
    chat_id: str | None = None  # the chat it went to, once sent (reads.note_sent)

    def taken_by_another(self, fingerprint: str) -> bool:
        """Whether the id is another body's: a command with ``fingerprint`` is not a repeat."""
        return self.fingerprint is not None and self.fingerprint != fingerprint


def _subscription(row: asyncpg.Record) -> Subscription:
    return from_row(Subscription, row, peer=peer_from_json(row["peer"]))


def _job(row: asyncpg.Record) -> BackfillJob:
    return from_row(BackfillJob, row, peer=peer_from_json(row["peer"]), until=row["until_date"])


class StateStore:
    """Subscriptions, backfill jobs, message chats and sends of every session."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ------------------------------------------------------------------ subscriptions

    async def subscribe(self, session_id: str, ref: str, command_id: str) -> Subscription:
        """Ask for a peer (idempotent: an active subscription stays as it is; a failed one
        is tried again)."""
        row = await self.pool.fetchrow(
            """INSERT INTO subscriptions (session_id, ref, status, command_id)
               VALUES ($1, $2, 'pending', $3)
               ON CONFLICT (session_id, ref) DO UPDATE SET
                   status = CASE WHEN subscriptions.status = 'failed' THEN 'pending'
                                 ELSE subscriptions.status END,
                   reason = CASE WHEN subscriptions.status = 'failed' THEN NULL
                                 ELSE subscriptions.reason END,
                   command_id = CASE WHEN subscriptions.status = 'failed' THEN $3
                                     ELSE subscriptions.command_id END,
                   updated_at = now()
               RETURNING *""",
            session_id,
            ref,
            command_id,
        )
        assert row is not None
        return _subscription(row)

    async def subscription(self, session_id: str, ref: str) -> Subscription | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM subscriptions WHERE session_id = $1 AND (ref = $2 OR chat_id = $2)",
            session_id,
            ref,
        )
        return _subscription(row) if row else None

    async def subscriptions(self, session_id: str, status: str | None = None) -> list[Subscription]:
        rows = await self.pool.fetch(
            """SELECT * FROM subscriptions WHERE session_id = $1
               AND ($2::text IS NULL OR status = $2) ORDER BY created_at, ref""",
            session_id,
            status,
        )
        return [_subscription(r) for r in rows]

    async def follow(self, session_id: str, peer: Peer, chat_id: str, last: int) -> bool:
        """Read a private chat the session wrote to, from message ``last`` on: an active
        subscription under the chat's id, unless one reads the chat already. True when this
        call made it."""
        status = await self.pool.execute(
            """INSERT INTO subscriptions (session_id, ref, status, chat_id, peer, last_seen_id)
               VALUES ($1, $2, 'active', $2, $3, $4) ON CONFLICT DO NOTHING""",
            session_id,
            chat_id,
            peer_json(peer),
            last,
        )
        return str(status).endswith(" 1")

    async def activate(
        self, session_id: str, ref: str, peer: Peer, chat_id: str, last: int, joined: bool = False
    ) -> str:
        """Record the resolved peer: ``active``, or ``duplicate`` when another reference
        already reads the same chat (this one is marked failed). ``joined``: the account
        joined the chat to read it; a leave still waiting for the chat is called off (that
        subscription had joined it: this one has)."""
        async with self.pool.acquire() as conn, conn.transaction():
            other = await conn.fetchval(
                """SELECT ref FROM subscriptions WHERE session_id = $1 AND chat_id = $2
                   AND ref <> $3""",
                session_id,
                chat_id,
                ref,
            )
            if other is not None:
                await conn.execute(
                    """UPDATE subscriptions SET status = 'failed', updated_at = now(),
                           reason = $3 WHERE session_id = $1 AND ref = $2""",
                    session_id,
                    ref,
                    f"already subscribed to chat {chat_id} as {other}",
                )
                return "duplicate"
            waiting = await conn.execute(
                "DELETE FROM leaves WHERE session_id = $1 AND chat_id = $2", session_id, chat_id
            )
            await conn.execute(
                """UPDATE subscriptions SET status = 'active', chat_id = $3, peer = $4,
                       last_seen_id = GREATEST(last_seen_id, $5), reason = NULL,
                       joined = $6, updated_at = now()
                   WHERE session_id = $1 AND ref = $2""",
                session_id,
                ref,
                chat_id,
                peer_json(peer),
                last,
                joined or waiting.endswith(" 1"),
            )
        return "active"

    async def fail_subscription(self, session_id: str, ref: str, reason: str) -> None:
        await self.pool.execute(
            """UPDATE subscriptions SET status = 'failed', reason = $3, updated_at = now()
               WHERE session_id = $1 AND ref = $2 AND status = 'pending'""",
            session_id,
            ref,
            reason,
        )

    async def unsubscribe(self, session_id: str, ref: str) -> Subscription | None:
        """Remove a subscription by reference or chat id (with failed attempts at the same
        reference); returns the one that was read, if any."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """DELETE FROM subscriptions
                   WHERE session_id = $1 AND (ref = $2 OR chat_id = $2) RETURNING *""",
                session_id,
                ref,
            )
            # What subscribing joined is left again (by the session's holder, at its tick).
            await conn.executemany(
                """INSERT INTO leaves (session_id, chat_id, peer) VALUES ($1, $2, $3)
                   ON CONFLICT DO NOTHING""",
                [(session_id, r["chat_id"], r["peer"]) for r in rows if r["joined"] and r["peer"]],
            )
        subs = sorted((_subscription(r) for r in rows), key=lambda s: s.status != "active")
        return subs[0] if subs else None

    async def leaves(self, session_id: str) -> list[tuple[str, Peer]]:
        """The chats the session is to leave: (chat id, peer)."""
        rows = await self.pool.fetch(
            "SELECT chat_id, peer FROM leaves WHERE session_id = $1 ORDER BY requested_at",
            session_id,
        )
        return [(r["chat_id"], peer) for r in rows if (peer := peer_from_json(r["peer"]))]

    async def left(self, session_id: str, chat_id: str) -> None:
        await self.pool.execute(
            "DELETE FROM leaves WHERE session_id = $1 AND chat_id = $2", session_id, chat_id
        )

    async def advance(self, session_id: str, chat_id: str, message_id: int) -> None:
        """The newest message published in a chat (never moves back)."""
        await self.pool.execute(
            """UPDATE subscriptions SET last_seen_id = $3
               WHERE session_id = $1 AND chat_id = $2 AND last_seen_id < $3""",
            session_id,
            chat_id,
            message_id,
        )

    # ------------------------------------------------------------------ update state

    async def update_state(self, session_id: str) -> UpdateState | None:
        """Where the session's update sequences stood when last stored (None: never)."""
        raw = await self.pool.fetchval(
            "SELECT state FROM update_states WHERE session_id = $1", session_id
        )
        return UpdateState.from_json(json.loads(raw)) if raw else None

    async def save_update_state(self, session_id: str, state: UpdateState) -> None:
        await self.pool.execute(
            """INSERT INTO update_states (session_id, state) VALUES ($1, $2::jsonb)
               ON CONFLICT (session_id) DO UPDATE SET state = $2::jsonb, updated_at = now()""",
            session_id,
            json.dumps(state.to_json()),
        )

    # ------------------------------------------------------------------ message chats

    async def remember_chats(self, session_id: str, items: list[tuple[int, str, str]]) -> None:
        """(message id, chat id, chat type) of private-chat and basic-group messages."""
        if not items:
            return
        await self.pool.executemany(
            """INSERT INTO message_chats (session_id, message_id, chat_id, chat_type)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            [(session_id, mid, chat, kind) for mid, chat, kind in items],
        )

    async def chats_of(self, session_id: str, ids: list[int]) -> dict[int, tuple[str, str]]:
        rows = await self.pool.fetch(
            """SELECT message_id, chat_id, chat_type FROM message_chats
               WHERE session_id = $1 AND message_id = ANY($2::bigint[])""",
            session_id,
            ids,
        )
        return {r["message_id"]: (r["chat_id"], r["chat_type"]) for r in rows}

    # ------------------------------------------------------------------ backfills

    async def add_backfill(
        self,
        *,
        session_id: str,
        workspace_id: str,
        job_id: str,
        ref: str,
        max_messages: int | None,
        until: datetime | None,
    ) -> tuple[BackfillJob, bool]:
        """Create a job (idempotent on its id); returns it and whether it is new."""
        row = await self.pool.fetchrow(
            """INSERT INTO backfills (job_id, session_id, workspace_id, ref, status,
                   max_messages, until_date)
               VALUES ($1, $2, $3, $4, 'pending', $5, $6)
               ON CONFLICT (session_id, job_id) DO NOTHING RETURNING *""",
            job_id,
            session_id,
            workspace_id,
            ref,
            max_messages,
            until,
        )
        if row is not None:
            return _job(row), True
        existing = await self.backfill(session_id, job_id)
        assert existing is not None
        return existing, False

    async def backfill(self, session_id: str, job_id: str) -> BackfillJob | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM backfills WHERE session_id = $1 AND job_id = $2", session_id, job_id
        )
        return _job(row) if row else None

    async def backfills(self, session_id: str) -> list[BackfillJob]:
        rows = await self.pool.fetch(
            "SELECT * FROM backfills WHERE session_id = $1 ORDER BY created_at", session_id
        )
        return [_job(r) for r in rows]

    async def next_backfill(self, session_id: str, now: datetime) -> BackfillJob | None:
        """The oldest job that may run now (not finished, not waiting out a flood wait)."""
        row = await self.pool.fetchrow(
            """SELECT * FROM backfills WHERE session_id = $1
                 AND status IN ('pending', 'running')
                 AND (resume_at IS NULL OR resume_at <= $2)
               ORDER BY created_at LIMIT 1""",
            session_id,
            now,
        )
        return _job(row) if row else None

    async def start_backfill(self, job: BackfillJob, peer: Peer, chat_id: str) -> None:
        await self.pool.execute(
            """UPDATE backfills SET status = 'running', peer = $3, chat_id = $4,
                   resume_at = NULL, updated_at = now()
               WHERE session_id = $1 AND job_id = $2""",
            job.session_id,
            job.job_id,
            peer_json(peer),
            chat_id,
        )

    async def checkpoint(
        self, job: BackfillJob, *, offset_id: int, fetched: int, expected: tuple[int, int]
    ) -> bool:
        """Advance the checkpoint from ``expected`` (offset, fetched); False when someone
        else moved it (a stale runner must stop)."""
        done = await self.pool.execute(
            """UPDATE backfills SET offset_id = $3, fetched = $4, updated_at = now()
               WHERE session_id = $1 AND job_id = $2 AND offset_id = $5 AND fetched = $6
                 AND status = 'running'""",
            job.session_id,
            job.job_id,
            offset_id,
            fetched,
            expected[0],
            expected[1],
        )
        return done.endswith(" 1")

    async def defer_backfill(self, job: BackfillJob, resume_at: datetime) -> None:
        await self.pool.execute(
            """UPDATE backfills SET resume_at = $3, updated_at = now()
               WHERE session_id = $1 AND job_id = $2""",
            job.session_id,
            job.job_id,
            resume_at,
        )

    async def finish_backfill(self, job: BackfillJob, status: str, reason: str | None) -> None:
        await self.pool.execute(
            """UPDATE backfills SET status = $3, reason = $4, resume_at = NULL,
                   updated_at = now() WHERE session_id = $1 AND job_id = $2""",
            job.session_id,
            job.job_id,
            status,
            reason,
        )

    # ------------------------------------------------------------------ sends

    async def send_record(self, workspace: str, message_id: str) -> SendRecord | None:
        """The send of ``message_id`` in ``workspace`` (send ids are per workspace)."""
        row = await self.pool.fetchrow(
            "SELECT * FROM sends WHERE workspace_id = $1 AND message_id = $2",
            workspace,
            message_id,
        )
        if row is None:
            return None
        return from_row(SendRecord, row)

    async def claim_send(
        self, workspace: str, message_id: str, session_id: str, fingerprint: str
    ) -> SendRecord | None:
        """Take ``message_id`` for a body (its ``fingerprint``) before its command is
        published: None when this call took it, else the record that holds it. Judging by
        the record alone, written once the session's holder takes the command, let two
        bodies posted at once both be accepted, and the bus's duplicate window drop one."""
        row = await self.pool.fetchrow(
            """INSERT INTO sends (workspace_id, message_id, session_id, status, attempts,
                                  fingerprint)
               VALUES ($1, $2, $3, 'sending', 0, $4)
               ON CONFLICT (workspace_id, message_id) DO NOTHING
               RETURNING message_id""",
            workspace,
            message_id,
            session_id,
            fingerprint,
        )
        return None if row is not None else await self.send_record(workspace, message_id)

    async def send_attempt(
        self, workspace: str, message_id: str, session_id: str, fingerprint: str | None = None
    ) -> int:
        """Count an attempt (creating the record, with the ``fingerprint`` of the body the id
        is first used with); returns the attempt number."""
        value = await self.pool.fetchval(
            """INSERT INTO sends (workspace_id, message_id, session_id, status, attempts,
                                  fingerprint)
               VALUES ($1, $2, $3, 'sending', 1, $4)
               ON CONFLICT (workspace_id, message_id) DO UPDATE
                   SET attempts = sends.attempts + 1, updated_at = now(),
                       fingerprint = COALESCE(sends.fingerprint, EXCLUDED.fingerprint)
               RETURNING attempts""",
            workspace,
            message_id,
            session_id,
            fingerprint,
        )
        return int(value)

    async def send_done(
        self,
        workspace: str,
        message_id: str,
        status: str,
        provider_message_id: str | None,
        reason: str | None,
        *,
        published: bool = True,
    ) -> None:
        """Record a send's outcome; ``published=False`` when its events are still to go out
        (:meth:`outcome_published` follows once they are on the bus). Telegram has the
        message by now: the database away a moment is waited out here, or the redelivery
        would find the send unrecorded and send it again."""
        await stored_for_sure(
            lambda: self.pool.execute(
                """UPDATE sends SET status = $3, provider_message_id = $4, reason = $5,
                   outcome_published = $6, updated_at = now()
               WHERE workspace_id = $1 AND message_id = $2""",
                workspace,
                message_id,
                status,
                provider_message_id,
                reason,
                published,
            )
        )

    async def outcome_published(self, workspace: str, message_id: str) -> None:
        """The events of a recorded outcome are on the bus."""
        await self.pool.execute(
            """UPDATE sends SET outcome_published = true
               WHERE workspace_id = $1 AND message_id = $2""",
            workspace,
            message_id,
        )
