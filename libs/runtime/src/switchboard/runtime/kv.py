"""Reading one KV entry as the runtime means it: a key never written, deleted, purged or
holding nothing is simply absent (nats-py raises for the first three, and hands back the
last as an entry), so every store asks one way."""

from __future__ import annotations

from typing import NamedTuple

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

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
