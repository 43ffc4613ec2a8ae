"""Backfill: page through a peer's history, newest first, as ``conv.message_received``.

Each page (at most 100 messages) is published (awaited to its acks, deduplicated against
live and earlier copies) and *then* checkpointed, so a crash re-reads at most one page and
publishes nothing twice. The checkpoint is a compare-and-set, so a runner that lost its lease
and is still finishing a page cannot move it back. Short flood waits are waited out while
holding the session; long ones defer the job (``resume_at``) and free the runner, and
whichever instance holds the session then resumes it from the checkpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypedDict

from switchboard.events import Event
from switchboard.events.catalog.common import Chat
from switchboard.events.catalog.mtproto import (
    BackfillCompleted,
    BackfillFailed,
    BackfillProgressed,
)
from switchboard.mtproto.convert import chat_id, chat_of, from_others, is_channel, received
from switchboard.mtproto.floods import DeferredError, FloodPolicy
from switchboard.mtproto.metrics import BACKFILL_JOBS, BACKFILL_MESSAGES
from switchboard.mtproto.ports import Message, MtprotoClient, Peer, PeerNotFoundError
from switchboard.mtproto.publisher import ConvPublisher
from switchboard.mtproto.state import BackfillJob, StateStore

StopReason = Literal["history_start", "date", "count"]


@dataclass
class BackfillPorts:
    client: MtprotoClient
    state: StateStore
    conv: ConvPublisher
    flood: FloodPolicy
    emit: Callable[[Event], Awaitable[None]]
    resolve: Callable[[str], Awaitable[Peer]]
    page_size: int = 100


def page_limit(job: BackfillJob, fetched: int, page_size: int) -> int:
    if job.max_messages is None:
        return page_size
    return max(0, min(page_size, job.max_messages - fetched))


def select(page: list[Message], until: datetime | None, room: int) -> tuple[list[Message], bool]:
    """The messages of a page to publish (newest first), and whether the date stop was hit."""
    kept = page if until is None else [m for m in page if m.date >= until]
    return kept[:room], len(kept) < len(page)


def history_call(
    client: MtprotoClient, peer: Peer, offset: int, limit: int, min_id: int = 0
) -> Callable[[], Awaitable[list[Message]]]:
    """One history page as a call the flood policy can repeat."""
    return lambda: client.get_history(peer, offset_id=offset, limit=limit, min_id=min_id)


async def run_backfill(ports: BackfillPorts, job: BackfillJob) -> str:
    """Run a job from its checkpoint; returns completed, failed, deferred or stale."""
    sid = job.session_id
    try:
        peer = job.peer
        if peer is None:
            peer = await ports.flood.call("resolve_peer", lambda: ports.resolve(job.ref))
    except PeerNotFoundError as exc:
        return await _failed(ports, job, f"cannot resolve {job.ref!r}", exc.reason, job.fetched)
    except DeferredError as exc:
        await ports.state.defer_backfill(job, exc.resume_at)
        return "deferred"
    chat = chat_of(peer)
    await ports.state.start_backfill(job, peer, chat.id)
    offset, fetched = job.offset_id, job.fetched
    while True:
        limit = page_limit(job, fetched, ports.page_size)
        if limit == 0:
            return await _completed(ports, job, chat, fetched, "count")
        try:
            page = await ports.flood.call(
                "get_history", history_call(ports.client, peer, offset, limit)
            )
        except DeferredError as exc:
            await ports.state.defer_backfill(job, exc.resume_at)
            return "deferred"
        except PeerNotFoundError as exc:
            return await _failed(ports, job, f"{job.ref!r} is not readable", exc.reason, fetched)
        if not page:
            return await _completed(ports, job, chat, fetched, "history_start")
        kept, date_stop = select(page, job.until, limit)
        now = datetime.now(UTC)
        await ports.conv.publish(
            [received(sid, m, now) for m in kept if from_others(m)],
            workspace_id=job.workspace_id,
            source="backfill",
        )
        if not is_channel(peer):
            await ports.state.remember_chats(
                sid, [(m.id, chat_id(m.peer), m.peer.type.value) for m in kept]
            )
        BACKFILL_MESSAGES.inc(len(kept))
        new_offset, new_fetched = min(m.id for m in page), fetched + len(kept)
        if not await ports.state.checkpoint(
            job, offset_id=new_offset, fetched=new_fetched, expected=(offset, fetched)
        ):
            return "stale"
        offset, fetched = new_offset, new_fetched
        await ports.emit(
            BackfillProgressed(**_about(job, now), chat=chat, fetched=fetched, offset_id=offset)
        )
        if date_stop:
            return await _completed(ports, job, chat, fetched, "date")


async def _completed(
    ports: BackfillPorts, job: BackfillJob, chat: Chat, fetched: int, stopped_by: StopReason
) -> str:
    event = BackfillCompleted(
        **_about(job, datetime.now(UTC)), chat=chat, fetched=fetched, stopped_by=stopped_by
    )
    return await _finish(ports, job, "completed", stopped_by, event)


async def _failed(
    ports: BackfillPorts, job: BackfillJob, reason: str, error_code: str | None, fetched: int
) -> str:
    event = BackfillFailed(
        **_about(job, datetime.now(UTC)), reason=reason, error_code=error_code, fetched=fetched
    )
    return await _finish(ports, job, "failed", reason, event)


class _About(TypedDict):
    """What every event of a job starts with: its session, its time and the job."""

    session_id: str
    at: datetime
    job_id: str


def _about(job: BackfillJob, at: datetime) -> _About:
    return {"session_id": job.session_id, "at": at, "job_id": job.job_id}


async def _finish(
    ports: BackfillPorts,
    job: BackfillJob,
    status: Literal["completed", "failed"],
    detail: str,
    event: Event,
) -> str:
    """End a job: its stored status and detail, its last event, the jobs metric."""
    await ports.state.finish_backfill(job, status, detail)
    await ports.emit(event)
    BACKFILL_JOBS.labels(status).inc()
    return status
