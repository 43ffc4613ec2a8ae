"""Honouring FLOOD_WAIT: a short wait is held (the caller keeps its lease and its work), a
long one gives the work back to be resumed later, by whichever instance holds the session."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from switchboard.events.catalog.mtproto import FloodWaited
from switchboard.mtproto.errors import MtprotoServiceError
from switchboard.mtproto.metrics import FLOOD_WAIT_SECONDS, FLOOD_WAITS
from switchboard.mtproto.ports import FloodWaitError

T = TypeVar("T")
# Telegram counts from its answer; a little slack keeps the retry from landing early.
SLACK_S = 0.05


class DeferredError(MtprotoServiceError):
    """A flood wait longer than may be held: stop, and resume the work at ``resume_at``."""

    def __init__(self, operation: str, seconds: int, resume_at: datetime) -> None:
        super().__init__(f"{operation}: flood wait of {seconds}s, resume at {resume_at}")
        self.operation = operation
        self.seconds = seconds
        self.resume_at = resume_at


@dataclass
class FloodPolicy:
    """Calls Telegram for one session, waiting out short flood waits."""

    session_id: str
    hold_max_s: float
    emit: Callable[[FloodWaited], Awaitable[None]]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # ``resume_at`` is judged by whichever instance holds the session next: the server's
    # clock in the service (``Runtime.clock``).
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def call(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                return await fn()
            except FloodWaitError as exc:
                await self.waited(operation, exc.seconds)

    async def waited(self, operation: str, seconds: int) -> None:
        """Record a flood wait; sleep through it when short, else raise DeferredError."""
        FLOOD_WAITS.labels(operation).inc()
        FLOOD_WAIT_SECONDS.labels(operation).inc(seconds)
        now = self.now()
        resume_at = now + timedelta(seconds=seconds + SLACK_S)
        hold = seconds <= self.hold_max_s
        await self.emit(
            FloodWaited(
                session_id=self.session_id,
                at=now,
                operation=operation,
                seconds=seconds,
                action="wait" if hold else "deferred",
                resume_at=resume_at,
            )
        )
        if not hold:
            raise DeferredError(operation, seconds, resume_at)
        await self.sleep(seconds + SLACK_S)
