"""Following a KV bucket: the one watch loop behind every in-process copy of a bucket
(accounts, API keys), so each cache only says how to apply one entry; :class:`Mirror` is
the copy that keeps every entry as parsed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from nats.js.kv import KeyValue

from switchboard.runtime.logging import get_logger

log = get_logger(__name__)

Apply = Callable[[str, bytes | None, str | None], None]
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
    """Hand every current and later entry of ``kv`` under ``keys`` to ``apply`` (key, value,
    operation) until ``stop``; ``loaded`` is set once the initial values have all been
    applied. ``idle`` runs whenever a second passes with no change (housekeeping between
    changes)."""
    watcher = await kv.watch(keys)
    try:
        while not stop.is_set():
            try:
                entry = await watcher.updates(timeout=1.0)  # type: ignore[no-untyped-call]
            except Exception as exc:
                if not _no_change(exc):
                    raise
                if idle is not None:
                    idle()
                continue
            if entry is None:  # end of the initial values
                loaded.set()
                continue
            apply(entry.key, entry.value, entry.operation)
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]


class Mirror(Generic[T]):
    """Every entry of a KV bucket, parsed, in ``entries`` by key and kept current by
    :meth:`run`: a deleted entry leaves, one that cannot be parsed is logged (``unreadable
    <what>``) and left out. ``bucket`` gives the bucket when the watch starts (a cache asks
    nothing of its store before that)."""

    def __init__(
        self, bucket: Callable[[], KeyValue], parse: Callable[[str, bytes], T], what: str
    ) -> None:
        self.bucket, self.parse, self.what = bucket, parse, what
        self.entries: dict[str, T] = {}
        self.loaded = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        await follow(self.bucket(), self._apply, self.loaded, stop)

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        if operation in ("DEL", "PURGE") or not value:
            self.entries.pop(key, None)
            return
        try:
            self.entries[key] = self.parse(key, value)
        except Exception as exc:
            log.error(f"unreadable {self.what}", key=key, error=str(exc))
