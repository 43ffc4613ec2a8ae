"""Reading one KV entry as the runtime means it: a key never written, deleted, purged or
holding nothing is simply absent (nats-py raises for the first three, and hands back the
last as an entry), so every store asks one way; and the one compare-and-set write
(``replace`` on a revision, ``create`` where there is none), with ``KvModels`` for pydantic
records read and written so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

import orjson
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import BatchPull, pending_after, stream_seq


class Current(NamedTuple):
    """A key's value and the revision it was written at (for a compare-and-set)."""

    value: bytes
    revision: int


async def current(kv: KeyValue, key: str) -> Current | None:
    """``key``'s value and revision now; None when it has none."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:  # never written, or deleted / purged (nats-py: every 404)
        return None
    if not entry.value or entry.revision is None:
        return None
    return Current(entry.value, entry.revision)


async def replace(kv: KeyValue, key: str, value: bytes, revision: int) -> int | None:
    """Write ``value`` only if ``key`` is still at ``revision`` (0: has no value yet): the
    new revision, or None when another writer came first (read it again)."""
    try:
        return await kv.update(key, value, last=revision)
    except KeyWrongLastSequenceError:
        return None


async def create(kv: KeyValue, key: str, value: bytes) -> int | None:
    """Write ``value`` only if ``key`` holds none (a deleted one counts as none): its
    revision, or None when the key holds one."""
    try:
        return await kv.create(key, value)
    except KeyWrongLastSequenceError:
        return None


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class KvModels(Generic[M]):
    """Records of ``model`` in ``kv``, one key each, read with the key's revision and
    written with compare-and-set; ``exclude_none`` drops unset fields when writing."""

    kv: KeyValue
    model: type[M]
    exclude_none: bool = False

    def dump(self, record: M) -> bytes:
        return record.model_dump_json(exclude_none=self.exclude_none).encode()

    async def read(self, key: str) -> tuple[M, int] | None:
        """The record with its KV revision (for :meth:`replace`); None when there is none."""
        entry = await current(self.kv, key)
        if entry is None:
            return None
        return self.model.model_validate(orjson.loads(entry.value)), entry.revision

    async def get(self, key: str) -> M | None:
        found = await self.read(key)
        return None if found is None else found[0]

    async def put(self, key: str, record: M) -> None:
        await self.kv.put(key, self.dump(record))

    async def replace(self, key: str, record: M, revision: int) -> bool:
        """Write ``record`` only if ``key`` is still at ``revision`` (0: has no value yet);
        False when another writer came first."""
        return await replace(self.kv, key, self.dump(record), revision) is not None

    async def create(self, key: str, record: M) -> bool:
        """Write ``record`` only if ``key`` holds none (a deleted one counts as none)."""
        return await create(self.kv, key, self.dump(record)) is not None


class Entry(NamedTuple):
    """A key with its value and the revision it was written at."""

    key: str
    value: bytes
    revision: int


# A key's deletion or purge (KV-Operation); the server's own markers that end a key
# (nats-server 2.11: a Nats-Marker-Reason header) are left out as well, in entries().
_GONE = ("DEL", "PURGE")


async def entries(bus: Bus, bucket: str, keys: str = ">") -> list[Entry]:
    """Every key of ``bucket`` under ``keys`` that holds a value now, with its revision.

    Read with an ephemeral pull consumer (the one pull reader, ``BatchPull``), not nats-py's
    watch. The watch marks the end of the current values when the server says nothing is
    pending and this client has received nothing, but the server's answer can overtake the
    deliveries it counted: the watch then ended before the first value, and a listing came
    back empty (eight posts placed at once for one destination: seven accepted, each having
    listed none of the others). A pull consumer delivers nothing before it is asked, so what
    its creation says is pending is exact, each delivery says how many are left, and a lost
    delivery is a ``ConsumerError`` (the listing is incomplete: ask again)."""
    stream, prefix = f"KV_{bucket}", f"$KV.{bucket}."
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        filter_subject=prefix + keys,
        mem_storage=True,
        inactive_threshold=5.0,
    )
    pull = await BatchPull(bus, stream, config).start()  # ephemeral: deleted by close
    try:
        pending, found = pull.pending, []
        while pending > 0:
            for msg in await pull.fetch(min(pending, 256), timeout=5.0):
                pending = pending_after(msg)
                headers = msg.headers or {}
                if msg.data and not (
                    headers.get("KV-Operation") in _GONE or "Nats-Marker-Reason" in headers
                ):
                    found.append(Entry(msg.subject[len(prefix) :], msg.data, stream_seq(msg)))
        return found
    finally:
        await pull.close()


async def entries_of(kv: KeyValue, keys: str = ">") -> list[Entry]:
    """:func:`entries` for a store that holds only its bucket's handle. nats-py's
    ``kv.keys()`` ends its listing on the watch's end marker, which can come before the keys
    (an account listing came back empty while the bucket held five). The bus is rebuilt
    from the handle's own JetStream context (nats-py keeps it private)."""
    js = kv._js
    bus = Bus(nc=js._nc, js=js, source="kv-listing")
    return await entries(bus, kv._name, keys)
