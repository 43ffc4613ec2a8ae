"""How outbound's records in KV are keyed. The send records, the schedule changes and the
calendar's posts and templates are pydantic records kept with ``runtime.kv.KvModels`` (read
with the key's revision, written with compare-and-set); each store names its keys here."""

from __future__ import annotations

import hashlib


def scoped(*parts: str) -> str:
    """A KV- and subject-safe token of ``parts`` (a workspace and an id of the caller's: any
    characters), the same for the same parts; every store names its keys with it."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]
