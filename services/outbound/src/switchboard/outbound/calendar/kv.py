"""Keys and listing of the ``calendar`` bucket: one key per object, scoped by workspace."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from nats.js.kv import KeyValue


def scoped(*parts: str) -> str:
    """A KV-safe token of ``parts`` (ids and names are the caller's: any characters)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def key(kind: str, workspace: str, ident: str) -> str:
    """The key of one object: ``<kind>.<workspace token>.<object token>``."""
    return f"{kind}.{scoped(workspace)}.{scoped(workspace, ident)}"


async def values(kv: KeyValue, kind: str, workspace: str) -> AsyncIterator[bytes]:
    """The current value of every object of ``kind`` in ``workspace``."""
    watcher = await kv.watch(f"{kind}.{scoped(workspace)}.*", ignore_deletes=True)
    try:
        async for entry in watcher:
            if entry is None:  # the end of what the bucket holds now
                return
            if entry.value:
                yield entry.value
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
