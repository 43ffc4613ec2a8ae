"""Keys and listing of the ``calendar`` bucket: one key per object, scoped by workspace."""

from __future__ import annotations

import hashlib

from nats.js.kv import KeyValue

from switchboard.runtime.kv import entries_of


def scoped(*parts: str) -> str:
    """A KV-safe token of ``parts`` (ids and names are the caller's: any characters)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def key(kind: str, workspace: str, ident: str) -> str:
    """The key of one object: ``<kind>.<workspace token>.<object token>``."""
    return f"{kind}.{scoped(workspace)}.{scoped(workspace, ident)}"


async def values(kv: KeyValue, kind: str, workspace: str) -> list[bytes]:
    """The current value of every object of ``kind`` in ``workspace``."""
    return [e.value for e in await entries_of(kv, f"{kind}.{scoped(workspace)}.*")]
