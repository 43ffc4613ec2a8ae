"""Following a KV bucket: the one watch loop behind every in-process copy of a bucket
(accounts, API keys), so each cache only says how to apply one entry; :class:`Mirror` is
the copy that keeps every entry as parsed. ``follow_changes`` is the watch for a bounded
cache (the PII keys) that only has to hear of changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from switchboard.runtime.logging import get_logger

log = get_logger(__name__)

Apply = Callable[[KeyValue.Entry], None]
T = TypeVar("T")


def _no_change(exc: Exception) -> bool:
    """Whether a watch merely saw nothing change in time (nats-py has its own TimeoutError)."""
    return isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()


async def follow(
    kv: KeyValue,
    apply: Apply,
    loaded: asyncio.Event,
    stop: asyncio.Event,
    *,
    keys: str = ">",
    idle: Callable[[], None] | None = None,
) -> None:
    """Hand every current and later entry of ``kv`` under ``keys`` to ``apply`` until
    ``stop``; ``loaded`` is set once the values current at the start have all been applied.
    ``idle`` runs whenever a second passes with no change (housekeeping between changes).

    nats-py's end-of-values marker (``None``) is not trusted on its own: it is sent when the
    consumer's info says nothing is pending and this client has received nothing, but the
    server's answer can overtake the deliveries it counted, and the marker then came before
    every value (a cache said loaded while empty: ingest served, and outbound sent past a
    pause, before the values arrived). Each delivery says exactly how many are left, so the
    values are loaded at the first entry with none left; the marker alone means loaded only
    when the server says it delivered nothing (an empty bucket)."""
    watcher = await kv.watch(keys)
    marked = False
    try:
        while not stop.is_set():
            try:
                entry = await watcher.updates(timeout=1.0)  # type: ignore[no-untyped-call]
            except Exception as exc:
                if not _no_change(exc):
                    raise
                if marked and not loaded.is_set() and await _pending(watcher) == 0:
                    # a second without a delivery after the marker, nothing pending: the
                    # last value was one nats-py skips (a marker reason it does not know)
                    loaded.set()
                if idle is not None:
                    idle()
                continue
            if entry is None:
                marked = True
                if not loaded.is_set() and await _pending(watcher, delivered=True) == 0:
                    loaded.set()
                continue
            apply(entry)
            if entry.delta == 0:
                loaded.set()
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]


async def follow_changes(
    kv: KeyValue, apply: Apply, ready: asyncio.Event, stop: asyncio.Event, *, keys: str = ">"
) -> None:
    """Hand every change made to ``kv`` under ``keys`` from now on to ``apply`` until
    ``stop``, not the values already there; ``ready`` is set once the watch is in place.
    For a cache that fetches what it needs and only has to hear of changes: following a
    bucket whole costs every process the whole bucket (the PII keys: ~500 bytes and ~20 us
    of start-up per key, measured with 300k keys).

    nats.go calls this an UpdatesOnly watch; nats-py's ``KeyValue.watch`` has no such option
    (its object store's has), so this is the consumer its watch makes (ordered, on the
    bucket's stream) with deliver policy NEW. nats-py resets an ordered consumer (a
    reconnect, missed heartbeats) from the last sequence it delivered: before any change
    that is the bucket's start, so a reset then replays the bucket once (what every start
    cost before; ``apply`` keeps its own bound)."""
    queue: asyncio.Queue[Msg] = asyncio.Queue()
    prefix = kv._pre  # "$KV.<bucket>.", as nats-py's own watch subscribes
    sub = await kv._js.subscribe(
        prefix + keys,
        stream=kv._stream,
        cb=queue.put,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
    )
    ready.set()
    try:
        while not stop.is_set():
            try:
                async with asyncio.timeout(1.0):
                    msg = await queue.get()
            except TimeoutError:
                continue
            apply(_entry(kv, msg, prefix))
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def _entry(kv: KeyValue, msg: Msg, prefix: str) -> KeyValue.Entry:
    """The entry a message of the bucket's stream stands for (as nats-py's watch reads it:
    a server's age or purge marker is a purge, a removal a delete)."""
    headers = msg.headers or {}
    operation = headers.get("KV-Operation")
    if operation is None and (reason := headers.get("Nats-Marker-Reason")) is not None:
        operation = "DEL" if reason == "Remove" else "PURGE"
    meta = msg.metadata
    return KeyValue.Entry(
        bucket=kv._name,
        key=msg.subject[len(prefix) :],
        value=msg.data,
        revision=meta.sequence.stream,
        delta=meta.num_pending,
        created=None,  # nobody reads it (nats-py types it int and passes a datetime)
        operation=operation,
    )


async def _pending(watcher: KeyValue.KeyWatcher, *, delivered: bool = False) -> int:
    """What the watch's consumer still holds (nats-py keeps it private), with what it has
    delivered when ``delivered``; -1 when it cannot tell."""
    sub = watcher._sub
    if sub is None:
        return -1
    try:
        info = await sub.consumer_info()
    except Exception as exc:  # a busy or reconnecting server: the next entry or second tells
        log.info("watch consumer info failed", error=str(exc))
        return -1
    sent = (info.delivered.consumer_seq or 0) if (delivered and info.delivered) else 0
    return (info.num_pending or 0) + sent


class Mirror(Generic[T]):
    """Every entry of a KV bucket (under ``keys``), parsed, in ``entries`` by key and kept
    current by :meth:`run`: a deleted entry leaves, one that cannot be parsed is logged
    (``unreadable <what>``) and left out. ``bucket`` gives the bucket when the watch starts
    (a cache asks nothing of its store before that)."""

    def __init__(
        self,
        bucket: Callable[[], KeyValue],
        parse: Callable[[str, bytes], T],
        what: str,
        *,
        keys: str = ">",
    ) -> None:
        self.bucket, self.parse, self.what, self.keys = bucket, parse, what, keys
        self.entries: dict[str, T] = {}
        self.loaded = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        await follow(self.bucket(), self._apply, self.loaded, stop, keys=self.keys)

    def _apply(self, entry: KeyValue.Entry) -> None:
        key, value = entry.key, entry.value
        if entry.operation in ("DEL", "PURGE") or not value:
            self.entries.pop(key, None)
            return
        try:
            self.entries[key] = self.parse(key, value)
        except Exception as exc:
            log.error(f"unreadable {self.what}", key=key, error=str(exc))
