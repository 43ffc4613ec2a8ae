"""Following a KV bucket: the one watch loop behind every in-process copy of a bucket
(accounts, API keys), so each cache only says how to apply one entry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from nats.js.kv import KeyValue

Apply = Callable[[str, bytes | None, str | None], None]


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
