"""The provider file-id cache: a file is uploaded once per account, then sent by its id.

Telegram `file_id`s are free to reuse forever but only by the bot that received them and
only as the same kind of media; WhatsApp media ids live 30 days per phone number. The key
therefore holds the owner (channel and account), the media kind and a digest of what was
sent (the bytes' SHA-256, or the URL's). The cache is an injectable object with async
get/put/delete so the outbound core can back it with a shared store (JetStream KV);
`KvFileIdCache` is the shared one the service uses; `InMemoryFileIdCache` the per-process
default of a bare client.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from switchboard.events.streams import SENDS
from switchboard.runtime.kv import current
from switchboard.runtime.logging import get_logger
from switchboard.runtime.lru import remember

log = get_logger(__name__)


@dataclass(frozen=True)
class FileKey:
    """What a cached id stands for: `owner` ("telegram:<bot id>", "whatsapp:<number id>"),
    the media `kind` and `digest` ("sha256:<hex of the bytes>" or "url:<hex of the URL>")."""

    owner: str
    kind: str
    digest: str

    def as_str(self) -> str:
        """A flat form for key-value stores: `owner/kind/digest` (ASCII, no spaces)."""
        return f"{self.owner}/{self.kind}/{self.digest}"

    @classmethod
    def for_bytes(cls, owner: str, kind: str, data: bytes) -> FileKey:
        """The key of uploaded bytes: their SHA-256."""
        return cls(owner, kind, "sha256:" + hashlib.sha256(data).hexdigest())

    @classmethod
    def for_url(cls, owner: str, kind: str, url: str) -> FileKey:
        """The key of a URL the provider fetched: the URL's SHA-256 (keys stay short)."""
        return cls(owner, kind, "url:" + hashlib.sha256(url.encode()).hexdigest())


class FileIdCache(Protocol):
    """Where provider file ids are remembered (shared by all instances if the core wants)."""

    async def get(self, key: FileKey) -> str | None:
        """The id stored for `key`, or None (also when it has expired)."""
        ...

    async def put(self, key: FileKey, file_id: str, ttl: float | None = None) -> None:
        """Remember `file_id` for `key`, forever or for `ttl` seconds."""
        ...

    async def delete(self, key: FileKey) -> None:
        """Forget `key` (the provider refused its id: upload again next time)."""
        ...


class InMemoryFileIdCache:
    """A bounded LRU of file ids in this process, with optional per-entry expiry."""

    def __init__(
        self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[FileKey, tuple[str, float | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: FileKey) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        file_id, expires_at = entry
        if expires_at is not None and self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return file_id

    async def put(self, key: FileKey, file_id: str, ttl: float | None = None) -> None:
        expires_at = None if ttl is None else self._clock() + ttl
        remember(self._entries, key, (file_id, expires_at), self.max_entries)

    async def delete(self, key: FileKey) -> None:
        self._entries.pop(key, None)


class KvFileIdCache:
    """File ids in a JetStream KV bucket, shared by every instance: a file one instance
    uploaded is sent by id from all of them. A failing read counts as a miss: uploading
    again is correct, only slower, and a send never fails because the cache does.

    Entries expire by the bucket's own TTL (``sends``: 8 days), kept by the server, so no
    instance compares a time another instance wrote with its own clock. An id that lives
    shorter than the bucket keeps its entries (a ``ttl`` below ``lifetime_s``; None: the
    bucket keeps them for ever) is not remembered at all: uploading again is always right,
    sending an expired id is not."""

    def __init__(self, kv: KeyValue, lifetime_s: float | None = SENDS.ttl_s or None) -> None:
        self.kv = kv
        self.lifetime_s = lifetime_s

    @staticmethod
    def kv_key(key: FileKey) -> str:
        """KV keys allow few characters: the key's hash, under ``file.``."""
        return "file." + hashlib.sha256(key.as_str().encode()).hexdigest()[:40]

    async def get(self, key: FileKey) -> str | None:
        try:
            entry = await current(self.kv, self.kv_key(key))
        except Exception as exc:  # the bus is down: a miss, the file goes by upload
            log.warning("file id cache read failed", error=str(exc))
            return None
        if entry is None:
            return None
        file_id = orjson.loads(entry.value).get("file_id")
        return str(file_id) if file_id else None

    async def put(self, key: FileKey, file_id: str, ttl: float | None = None) -> None:
        if ttl is not None and (self.lifetime_s is None or ttl < self.lifetime_s):
            log.error(
                "file id not cached: it expires before the bucket forgets it",
                ttl_s=ttl,
                bucket_ttl_s=self.lifetime_s,
            )
            return
        value = orjson.dumps({"file_id": file_id, "key": key.as_str()})
        try:
            await self.kv.put(self.kv_key(key), value)
        except Exception as exc:  # not remembered: the next send uploads again
            log.warning("file id cache write failed", error=str(exc))

    async def delete(self, key: FileKey) -> None:
        try:
            await self.kv.delete(self.kv_key(key))
        except KeyNotFoundError:
            return
