"""API keys as credentials: created, listed, rotated and revoked by an operator, stored in
the ``api_keys`` KV bucket as a keyed hash (never the key), with scopes, an optional expiry
and a last-used time. Every instance watches the bucket, so a revocation takes effect
everywhere without a restart.

A key reads ``sbk_<key id>_<secret>``: the id finds the record in one KV get, the secret
(32 random bytes) is what the hash proves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from switchboard.runtime.errors import SwitchboardRuntimeError
from switchboard.runtime.kv import KvModels, current, entries_of
from switchboard.runtime.kvwatch import Mirror
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)

PREFIX = "sbk_"
KEY_ID = re.compile(r"^[a-f0-9]{16}$")
_KEY_SHAPE = re.compile(r"^sbk_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$")
# A key's last use is written at most this often per key and instance (not per request).
LAST_USED_EVERY = timedelta(minutes=1)


class Scope(StrEnum):
    """What a key may do: reads, sends and writes, operator things of its workspace."""

    READ = "read"
    SEND = "send"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)


def parse_scopes(value: str | Iterable[str]) -> frozenset[Scope]:
    """``read,send`` -> {Scope.READ, Scope.SEND}; an unknown name is a ValueError naming it."""
    names = value.split(",") if isinstance(value, str) else list(value)
    scopes: set[Scope] = set()
    for name in (n.strip() for n in names):
        if not name:
            continue
        try:
            scopes.add(Scope(name))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {name!r} (known: {known})") from None
    if not scopes:
        raise ValueError("at least one scope is needed")
    return frozenset(scopes)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a workspace and what its key may do."""

    workspace: str
    scopes: frozenset[Scope]
    key_id: str | None = None  # None for a config-file (dev) key


class KeyRecord(BaseModel):
    """One stored key. ``hash`` is HMAC-SHA256(pepper, key): the key cannot be recovered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=KEY_ID.pattern)
    workspace_id: str = Field(min_length=1, max_length=64)
    scopes: tuple[Scope, ...]
    hash: str = Field(repr=False)
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    name: str | None = Field(None, max_length=200)
    rotated_to: str | None = None

    def usable(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def public(self) -> dict[str, object]:
        """What an operator may see: everything but the hash."""
        return self.model_dump(mode="json", exclude={"hash"})


def hash_key(pepper: bytes, key: str) -> str:
    """The stored proof of a key.

    HMAC-SHA256 with a deployment pepper rather than a slow password hash (argon2, bcrypt):
    the keys are 256 random bits, so nobody can guess them offline and slowness buys
    nothing, while every request pays for the check. The pepper (a secret kept outside the
    bucket) means a copy of the bucket alone cannot even test guesses.
    """
    return hmac.digest(pepper, key.encode(), "sha256").hex()  # one-shot: the C fast path


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``."""
    key_id = secrets.token_hex(8)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    """The id inside a key of our shape (None for anything else, e.g. a dev config key)."""
    match = _KEY_SHAPE.fullmatch(key)
    return match.group(1) if match else None


def verify(record: KeyRecord, pepper: bytes, key: str, now: datetime) -> bool:
    """True when ``key`` is the record's key and the record is neither revoked nor expired."""
    return hmac.compare_digest(record.hash, hash_key(pepper, key)) and record.usable(now)


def needs_touch(record: KeyRecord, now: datetime) -> bool:
    """Whether this use should be written as the key's last use (at most once a minute)."""
    return record.last_used_at is None or now - record.last_used_at >= LAST_USED_EVERY


class AlreadyRotatedError(SwitchboardRuntimeError):
    """A key that was rotated before: it has its successor (409), and stays until its
    grace ends or it is revoked."""

    def __init__(self, key_id: str, successor: str) -> None:
        super().__init__(f"API key {key_id!r} was already rotated to {successor!r}")
        self.key_id = key_id
        self.successor = successor


class KeyStore:
    """Create, list, rotate and revoke keys in the ``api_keys`` bucket."""

    def __init__(
        self, kv: KeyValue, pepper: bytes, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        if len(pepper) < 16:
            raise ValueError("the API key pepper must be at least 16 bytes")
        self.kv = kv
        self.records = KvModels(kv, KeyRecord)
        self.pepper = pepper
        # Expiries, revocations and last uses are written by one process (a service, the
        # CLI) and judged by every other: all on the server's clock (``Runtime.clock``).
        self.now = now

    async def create(
        self,
        workspace: str,
        scopes: Iterable[Scope],
        *,
        expires_at: datetime | None = None,
        name: str | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key; the plaintext key is returned once and never stored."""
        key_id, key = new_key()
        record = KeyRecord(
            key_id=key_id,
            workspace_id=workspace,
            scopes=tuple(sorted(set(scopes))),
            hash=hash_key(self.pepper, key),
            created_at=self.now(),
            expires_at=expires_at,
            name=name,
        )
        await self.kv.create(key_id, record.model_dump_json().encode())
        return record, key

    async def get(self, key_id: str) -> KeyRecord | None:
        found = await self._read(key_id)
        return None if found is None else found[0]

    async def _read(self, key_id: str) -> tuple[KeyRecord, int] | None:
        """The record and the revision it was read at (what a change is conditioned on)."""
        return await self.records.read(key_id) if KEY_ID.fullmatch(key_id) else None

    async def list(self, workspace: str | None = None) -> list[KeyRecord]:
        found = sorted(await entries_of(self.kv))  # not kv.keys(): it can end early
        records = [
            KeyRecord.model_validate_json(value) for key, value, _ in found if KEY_ID.fullmatch(key)
        ]
        return [r for r in records if workspace is None or r.workspace_id == workspace]

    async def revoke(self, key_id: str) -> KeyRecord | None:
        """Mark a key revoked (kept for the record; it authenticates nothing any more). On
        the revision read: a rotation or a use written meanwhile is read again, not lost."""
        while (found := await self._read(key_id)) is not None:
            record, revision = found
            if record.revoked_at is not None:
                return record
            revoked = record.model_copy(update={"revoked_at": self.now()})
            if await self.records.replace(key_id, revoked, revision):
                return revoked
        return None

    async def rotate(
        self, key_id: str, grace: timedelta = timedelta(0)
    ) -> tuple[KeyRecord, str] | None:
        """A new key with the same workspace, scopes and expiry; the old one stops working
        after ``grace`` (0: at once), so clients can switch without an outage. None when the
        key is missing, revoked or expired; :class:`AlreadyRotatedError` when it was
        rotated before (it names its successor).

        The old record is changed only on the revision it was read at, so a revocation
        meanwhile stands (a plain put had written the old record back without it), and of
        rotations at once one makes a key, not each. The new key is written first: a
        rotation that then loses the race purges it (no one was told its secret)."""
        while (found := await self._read(key_id)) is not None:
            old, revision = found
            if old.rotated_to is not None:
                raise AlreadyRotatedError(key_id, old.rotated_to)
            if not old.usable(self.now()):
                return None
            record, key = await self.create(
                old.workspace_id, old.scopes, expires_at=old.expires_at, name=old.name
            )
            now = self.now()
            update: dict[str, object] = {"rotated_to": record.key_id}
            if grace <= timedelta(0):
                update["revoked_at"] = now
            else:
                until = now + grace
                update["expires_at"] = min(until, old.expires_at) if old.expires_at else until
            if await self.records.replace(key_id, old.model_copy(update=update), revision):
                return record, key
            await self.kv.purge(record.key_id)
        return None

    async def touch(self, record: KeyRecord, now: datetime) -> None:
        """Record a use; a lost race with a revocation must not undo it, hence the CAS."""
        found = await current(self.kv, record.key_id)
        if found is None:
            return
        stored = KeyRecord.model_validate_json(found.value)
        updated = stored.model_copy(update={"last_used_at": now})
        with contextlib.suppress(Exception):  # another writer won: its record stands
            await self.kv.update(record.key_id, updated.model_dump_json().encode(), found.revision)


def _parse_record(key: str, value: bytes) -> KeyRecord:
    return KeyRecord.model_validate_json(value)


class KeyCache(Mirror[KeyRecord]):
    """A live view of the bucket (fed by a KV watch) that authenticates keys.

    A key not yet in the view (created a moment ago on another instance) is looked up in
    the bucket directly, so a new key works at once; a revocation reaches the view through
    the watch.
    """

    def __init__(self, store: KeyStore) -> None:
        super().__init__(lambda: store.kv, _parse_record, "API key record")
        self.store = store
        self._touching: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def authenticate(self, key: str) -> Principal | None:
        """The principal of ``key``, or None (unknown, revoked or expired)."""
        key_id = key_id_of(key)
        if key_id is None:
            return None
        record = self.entries.get(key_id)
        if record is None:
            record = await self.store.get(key_id)
            if record is None:
                return None
            self.entries.setdefault(key_id, record)
        now = self.store.now()
        if not verify(record, self.store.pepper, key, now):
            return None
        self._maybe_touch(record, now)
        return Principal(record.workspace_id, frozenset(record.scopes), record.key_id)

    def usable(self, key_id: str) -> bool:
        """Whether a key seen before is still neither revoked nor expired (for what it opened,
        e.g. a dashboard sign-in); before the view has loaded, trust the earlier check."""
        record = self.entries.get(key_id)
        if record is None:
            return not self.loaded.is_set()
        return record.usable(self.store.now())

    def _maybe_touch(self, record: KeyRecord, now: datetime) -> None:
        if not needs_touch(record, now) or record.key_id in self._touching:
            return
        self._touching.add(record.key_id)
        # Seen as used from now on in this view, so the next minute of requests write nothing.
        self.entries[record.key_id] = record.model_copy(update={"last_used_at": now})

        async def write() -> None:
            try:
                await self.store.touch(record, now)
            except Exception as exc:
                log.warning("could not record an API key's last use", error=str(exc))
            finally:
                self._touching.discard(record.key_id)

        task = asyncio.get_running_loop().create_task(write())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
