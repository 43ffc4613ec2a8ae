"""A local cap on sign-in attempts per phone and per workspace, before Telegram's own.

Telegram answers too many code requests or wrong codes with long FLOOD_WAITs and, for a
phone hammered from many places, a ban. The gateway refuses earlier: at most ``per_phone``
attempts for one phone and ``per_workspace`` for one workspace within a sliding window.
The decision is a pure function; :class:`SignInAttempts` keeps the attempts in Postgres so
every instance counts the same ones (and an advisory lock makes check-and-record atomic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg

Scope = Literal["phone", "workspace"]


@dataclass(frozen=True, slots=True)
class SignInCaps:
    """At most ``per_phone`` / ``per_workspace`` attempts within ``window_s`` seconds."""

    per_phone: int = 5
    per_workspace: int = 30
    window_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one more attempt may go to Telegram; when not, which cap refused it and how
    many whole seconds until the oldest counted attempt leaves the window."""

    allowed: bool
    scope: Scope | None = None
    retry_after_s: int = 0

    @property
    def error_code(self) -> str | None:
        return None if self.scope is None else f"SIGN_IN_CAP_{self.scope.upper()}"


def _refusal(
    scope: Scope, attempts: Sequence[datetime], cap: int, now: datetime, window: timedelta
) -> Verdict | None:
    recent = sorted(at for at in attempts if now - at < window)
    if len(recent) < cap:
        return None
    # The attempt that must leave the window before one more fits.
    frees_at = recent[len(recent) - cap] + window
    return Verdict(False, scope, max(1, math.ceil((frees_at - now).total_seconds())))


def decide(
    phone_attempts: Sequence[datetime],
    workspace_attempts: Sequence[datetime],
    now: datetime,
    caps: SignInCaps,
) -> Verdict:
    """May one more sign-in attempt go out, given the earlier attempts' times? The phone's
    cap is checked first (it is the narrower one and the one Telegram would punish)."""
    window = timedelta(seconds=caps.window_s)
    for scope, attempts, cap in (
        ("phone", phone_attempts, caps.per_phone),
        ("workspace", workspace_attempts, caps.per_workspace),
    ):
        refused = _refusal(scope, attempts, cap, now, window)  # type: ignore[arg-type]
        if refused is not None:
            return refused
    return Verdict(True)


class SignInAttempts:
    """The attempts of the window, in ``signin_attempts``."""

    def __init__(self, pool: asyncpg.Pool, caps: SignInCaps) -> None:
        self.pool = pool
        self.caps = caps

    async def admit(self, workspace_id: str, phone: str, now: datetime | None = None) -> Verdict:
        """Decide, and record the attempt when it is allowed (one transaction, serialized per
        workspace and phone, so two instances cannot both take the last slot)."""
        now = now or datetime.now(UTC)
        since = now - timedelta(seconds=self.caps.window_s)
        async with self.pool.acquire() as conn, conn.transaction():
            # Workspace first, phone second, always: two transactions cannot wait on each
            # other in a cycle.
            for key in (f"signin:ws:{workspace_id}", f"signin:phone:{phone}"):
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)
            await conn.execute("DELETE FROM signin_attempts WHERE at < $1", since)
            by_phone = await conn.fetch(
                "SELECT at FROM signin_attempts WHERE phone = $1 AND at >= $2", phone, since
            )
            by_workspace = await conn.fetch(
                "SELECT at FROM signin_attempts WHERE workspace_id = $1 AND at >= $2",
                workspace_id,
                since,
            )
            verdict = decide(
                [r["at"] for r in by_phone], [r["at"] for r in by_workspace], now, self.caps
            )
            if verdict.allowed:
                await conn.execute(
                    "INSERT INTO signin_attempts (workspace_id, phone, at) VALUES ($1, $2, $3)",
                    workspace_id,
                    phone,
                    now,
                )
        return verdict
