"""Keys and listing of the ``calendar`` bucket: one key per object, scoped by workspace."""

from __future__ import annotations

from nats.js.kv import KeyValue

from switchboard.outbound.kvmodels import scoped
from switchboard.runtime.kv import entries_of


def key(kind: str, workspace: str, ident: str) -> str:
    """The key of one object: ``<kind>.<workspace token>.<object token>``."""
    return f"{kind}.{scoped(workspace)}.{scoped(workspace, ident)}"


async def values(kv: KeyValue, kind: str, workspace: str) -> list[bytes]:
    """The current value of every object of ``kind`` in ``workspace``."""
    return [e.value for e in await entries_of(kv, f"{kind}.{scoped(workspace)}.*")]
