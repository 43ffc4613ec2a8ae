"""Reading one KV entry as the runtime means it: a key never written, deleted, purged or
holding nothing is simply absent (nats-py raises for the first three, and hands back the
last as an entry), so every store asks one way."""

from __future__ import annotations

from typing import NamedTuple

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from switchboard.runtime.failures import InfrastructureError


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


class Entry(NamedTuple):
    """A key with its value and the revision it was written at."""

    key: str
    value: bytes
    revision: int


class ListingLostError(InfrastructureError):
    """A delivery of a listing was lost on the way: the listing is incomplete (ask again)."""


# A key's deletion or purge (KV-Operation); the server's own markers that end a key
# (nats-server 2.11: a Nats-Marker-Reason header) are left out as well, in entries().
_GONE = ("DEL", "PURGE")


async def entries(kv: KeyValue, keys: str = ">") -> list[Entry]:
    """Every key of ``kv`` under ``keys`` that holds a value now, with its revision.

    Read with a pull consumer, not nats-py's watch. The watch marks the end of the current
    values when the server says nothing is pending and this client has received nothing,
    but the server's answer can overtake the deliveries it counted: the watch then ended
    before the first value, and a listing came back empty (eight posts placed at once for
    one destination: seven accepted, each having listed none of the others). A pull
    consumer delivers nothing before it is asked, so what it says is pending is exact, and
    each delivery says how many are left."""
    js, stream, prefix = kv._js, kv._stream, kv._pre  # nats-py keeps them private
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        filter_subject=prefix + keys,
        mem_storage=True,
        inactive_threshold=5.0,
    )
    # Server-named (no name in the request: the bare create subject, which the services'
    # NATS users may use), then bound; what it holds now is in the answer to its creation.
    info = await js.add_consumer(stream, config)
    sub = await js.pull_subscribe_bind(durable=None, stream=stream, name=info.name)
    try:
        pending = info.num_pending or 0
        found: list[Entry] = []
        delivered = 0
        while pending > 0:
            for msg in await sub.fetch(min(pending, 256), timeout=5.0):
                meta = msg.metadata
                if meta.sequence.consumer != delivered + 1:
                    raise ListingLostError(f"{stream}: delivery {meta.sequence.consumer} lost")
                delivered, pending = meta.sequence.consumer, meta.num_pending
                headers = msg.headers or {}
                if msg.data and not (
                    headers.get("KV-Operation") in _GONE or "Nats-Marker-Reason" in headers
                ):
                    found.append(Entry(msg.subject[len(prefix) :], msg.data, meta.sequence.stream))
        return found
    finally:
        await sub.unsubscribe()
