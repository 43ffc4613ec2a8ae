"""Dashboard sign-ins: a server-side session per browser in the ``dashboard_sessions``
bucket (so every instance sees it and a sign-out ends it everywhere), with an idle timeout
and a lifetime; login attempts counted per client address and per key in the same bucket.

The cookie holds only a random session id; the bucket holds its SHA-256, so a copy of the
bucket signs nobody in. The API key itself is never stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict

from switchboard.runtime.kv import current

REFRESH_EVERY = timedelta(minutes=1)  # a session's last activity is written at most this often


class SignIn(BaseModel):
    """One signed-in browser."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workspace_id: str
    key_id: str | None  # the stored key it signed in with (None: a dev config key)
    csrf: str  # the sign-out form's token
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta
    absolute: timedelta


def alive(record: SignIn, now: datetime, lifetimes: Lifetimes) -> bool:
    """Neither idle for too long nor older than the absolute lifetime."""
    return (
        now - record.last_seen_at < lifetimes.idle and now - record.created_at < lifetimes.absolute
    )


def needs_refresh(record: SignIn, now: datetime) -> bool:
    return now - record.last_seen_at >= REFRESH_EVERY


def session_key(session_id: str) -> str:
    return "s." + hashlib.sha256(session_id.encode()).hexdigest()


def attempt_key(kind: str, value: str, now: datetime, window: timedelta) -> str:
    """The counter of ``kind`` (ip, key) attempts of ``value`` in the window holding ``now``;
    the value is hashed (an address or a key attempt does not sit in the bucket)."""
    start = int(now.timestamp()) // int(window.total_seconds())
    return f"rl.{kind}.{hashlib.sha256(value.encode()).hexdigest()[:32]}.{start}"


def retry_after(now: datetime, window: timedelta) -> int:
    """Seconds until the current window ends."""
    size = int(window.total_seconds())
    return size - int(now.timestamp()) % size


class SignInStore:
    """Sign-ins and login attempt counters in the ``dashboard_sessions`` bucket."""

    def __init__(
        self,
        kv: KeyValue,
        lifetimes: Lifetimes,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kv = kv
        self.lifetimes = lifetimes
        # A session's times are written by one instance and judged by another, and attempt
        # windows are counted by all: the service gives the server's clock
        # (``runtime.servertime``), one time for every instance.
        self.now = now

    async def create(self, workspace: str, key_id: str | None) -> tuple[str, SignIn]:
        """A new session; its id (for the cookie) is returned and never stored."""
        session_id = secrets.token_urlsafe(32)
        now = self.now()
        record = SignIn(
            workspace_id=workspace,
            key_id=key_id,
            csrf=secrets.token_urlsafe(24),
            created_at=now,
            last_seen_at=now,
        )
        await self.kv.put(session_key(session_id), record.model_dump_json().encode())
        return session_id, record

    async def get(self, session_id: str) -> SignIn | None:
        """The live session of ``session_id`` (refreshing its last activity now and then);
        None when unknown, signed out or timed out (a timed-out one is deleted)."""
        if not session_id or len(session_id) > 128:
            return None
        key = session_key(session_id)
        entry = await current(self.kv, key)
        if entry is None:
            return None
        record = SignIn.model_validate_json(entry.value)
        now = self.now()
        if not alive(record, now, self.lifetimes):
            await self.end(session_id)
            return None
        if needs_refresh(record, now):
            record = record.model_copy(update={"last_seen_at": now})
            with contextlib.suppress(KeyWrongLastSequenceError):  # a sign-out or a refresh won
                await self.kv.update(key, record.model_dump_json().encode(), entry.revision)
        return record

    async def end(self, session_id: str) -> None:
        """Sign out: the session id authenticates nothing from now on, on every instance."""
        with contextlib.suppress(NotFoundError):
            await self.kv.purge(session_key(session_id))

    async def count_attempt(self, kind: str, value: str, window: timedelta) -> int:
        """Count one attempt; the number of attempts in this window, this one included."""
        key = attempt_key(kind, value, self.now(), window)
        for _ in range(20):  # compare-and-set against concurrent instances
            try:
                entry = await self.kv.get(key)
            except NotFoundError:
                with contextlib.suppress(KeyWrongLastSequenceError):
                    await self.kv.create(key, b"1")
                    return 1
                continue  # created meanwhile by another request: read it again
            count = int(entry.value or b"0") + 1
            try:
                await self.kv.update(key, str(count).encode(), entry.revision)
                return count
            except KeyWrongLastSequenceError:
                continue
        raise RuntimeError("login attempt counter is too contended")
