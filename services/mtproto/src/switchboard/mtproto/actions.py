"""Session commands that any instance may accept: they only record what is wanted (in
Postgres); the instance holding the session does it (resolves the peer, runs the job, logs
out) with its connection. Shared by the bus handler and the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from switchboard.events.catalog.mtproto import CommandRejected, SubscriptionRemoved
from switchboard.events.envelope import Envelope
from switchboard.mtproto.convert import normalize_ref
from switchboard.mtproto.ports import ChatWriteForbiddenError, PeerNotFoundError, error_from_rpc
from switchboard.mtproto.sessions import SessionStore
from switchboard.mtproto.state import StateStore
from switchboard.runtime.bus import Bus


@dataclass(frozen=True)
class Result:
    """``status`` is the HTTP status; ``reason`` says why when it is an error."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status < 400


async def _target(sessions: SessionStore, session_id: str, ref: str) -> str | Result:
    """The normalized chat ``ref`` an active session is asked to read, or why it cannot."""
    status = await sessions.status(session_id)
    if status is None:
        return Result(404, reason=f"no session {session_id!r}")
    if status != "active":
        return Result(409, reason=f"session {session_id!r} is {status}")
    try:
        return normalize_ref(ref)
    except ValueError as exc:
        return Result(400, reason=str(exc))


async def subscribe(
    sessions: SessionStore, state: StateStore, session_id: str, ref: str, command_id: str
) -> Result:
    norm = await _target(sessions, session_id, ref)
    if isinstance(norm, Result):
        return norm
    sub = await state.subscribe(session_id, norm, command_id)
    return Result(202 if sub.status == "pending" else 200, sub.public())


def failure_status(reason: str | None) -> int:
    """The HTTP status of a subscription that failed, from its reason (Telegram's error name
    first): a peer unknown or hidden from the account 404; banned there 403; not joinable,
    read already under another reference, or refused otherwise 409."""
    name = (reason or "").split(":", 1)[0]
    error = error_from_rpc(name)
    if isinstance(error, PeerNotFoundError):
        return 404
    return 403 if isinstance(error, ChatWriteForbiddenError) else 409


async def unsubscribe(state: StateStore, session_id: str, ref: str) -> Result:
    try:
        key = normalize_ref(ref)
    except ValueError:
        key = ref.strip()
    removed = await state.unsubscribe(session_id, key)
    if removed is None:
        return Result(404, reason=f"session {session_id!r} does not read {ref!r}")
    return Result(200, removed.public())


def unsubscribed(session_id: str, result: Result) -> SubscriptionRemoved:
    """The event saying a successful ``unsubscribe`` stopped reading the peer."""
    return SubscriptionRemoved(
        session_id=session_id,
        at=datetime.now(UTC),
        ref=str(result.body["ref"]),
        chat_id=result.body.get("chat_id"),
    )


async def backfill(
    sessions: SessionStore,
    state: StateStore,
    *,
    session_id: str,
    job_id: str,
    ref: str,
    max_messages: int | None,
    until: datetime | None,
) -> Result:
    norm = await _target(sessions, session_id, ref)
    if isinstance(norm, Result):
        return norm
    record = await sessions.get_session(session_id)
    assert record is not None
    job, created = await state.add_backfill(
        session_id=session_id,
        workspace_id=record.workspace_id,
        job_id=job_id,
        ref=norm,
        max_messages=max_messages,
        until=until,
    )
    return Result(202 if created else 200, job.public())


async def logout(sessions: SessionStore, session_id: str) -> Result:
    """Drop a login in progress; mark a session for logout (its holder revokes it at
    Telegram and deletes it)."""
    had_login = await sessions.get_login(session_id) is not None
    await sessions.delete_login(session_id)
    marked = await sessions.request_logout(session_id)
    if not marked and not had_login:
        return Result(404, reason=f"no session {session_id!r}")
    status = await sessions.status(session_id)
    return Result(202 if status else 200, {"session_id": session_id, "status": status or "gone"})


async def reject(
    bus: Bus, envelope: Envelope, command: str, session_id: str, result: Result
) -> None:
    """Say on the bus that a command could not be applied (``mtproto.command_rejected``)."""
    await bus.publish(
        CommandRejected(
            session_id=session_id,
            at=datetime.now(UTC),
            command_id=envelope.id,
            command=command,
            status=result.status,
            reason=result.reason or "rejected",
        ),
        cause=envelope,
    )
