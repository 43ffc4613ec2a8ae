"""Following a KV bucket: the one watch loop behind every in-process copy of a bucket
(accounts, API keys), so each cache only says how to apply one entry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from nats.js.kv import KeyValue

Apply = Callable[[str, bytes | None, str | None], None]


async def follow(kv: KeyValue, apply: Apply, loaded: asyncio.Event, stop: asyncio.Event) -> None:
    """Hand every current and later entry of ``kv`` to ``apply`` (key, value, operation)
    until ``stop``; ``loaded`` is set once the initial values have all been applied."""
    watcher = await kv.watchall()
    try:
        while not stop.is_set():
            try:
                entry = await watcher.updates(timeout=1.0)  # type: ignore[no-untyped-call]
            except TimeoutError:
                continue
            except Exception as exc:
                if "timeout" in type(exc).__name__.lower():
                    continue
                raise
            if entry is None:  # end of the initial values
                loaded.set()
                continue
            apply(entry.key, entry.value, entry.operation)
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]
