"""Session ids are per workspace: the id a caller chooses names its own session.

The gateway keys everything by one session id (tables, leases, sealed secrets, events), so
an id another workspace already uses is kept apart under an alias: the caller's id with a
keyed hash of its workspace. A request naming an id gets the caller's session under it, if
any (the alias first, then the id itself); an id in use by another workspace is the alias,
so creating a session under it answers as for a free id and leaks nothing. Answers name the
id the caller chose (``external``); events and bus messages name the alias.
"""

from __future__ import annotations

from typing import Protocol

from switchboard.runtime.identity import keyed_hash

MAX_LENGTH = 64  # the catalog's limit of a session id


class Owners(Protocol):
    async def owner(self, session_id: str) -> str | None:
        """The workspace of a session or login in progress; None: no such one."""
        ...


def alias(workspace: str, session_id: str) -> str:
    """The gateway's id for ``workspace``'s ``session_id`` when another workspace uses it."""
    tag = "-w" + keyed_hash("session-id", workspace, session_id)[:16]
    return session_id[: MAX_LENGTH - len(tag)] + tag


def decide(workspace: str, session_id: str, alias_owner: str | None, owner: str | None) -> str:
    """Pure: the caller's alias when it holds one, the id when it is free or the caller's,
    and the alias when another workspace holds the id."""
    if alias_owner == workspace:
        return alias(workspace, session_id)
    if owner is None or owner == workspace:
        return session_id
    return alias(workspace, session_id)


def external(workspace: str, session_id: str) -> str:
    """The id ``workspace`` chose for the session the gateway calls ``session_id``."""
    base, sep, tag = session_id.rpartition("-w")
    if sep and len(tag) == 16 and alias(workspace, base) == session_id:
        return base
    return session_id


async def resolve(owners: Owners, workspace: str, session_id: str) -> str:
    """The gateway's id of the session ``workspace`` names ``session_id``."""
    mine = alias(workspace, session_id)
    return decide(workspace, session_id, await owners.owner(mine), await owners.owner(session_id))
