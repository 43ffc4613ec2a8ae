"""Tenancy in one place: every object a request or command names is looked up through
:func:`visible` / :func:`require`, so another workspace's object does not exist for the caller.

Over HTTP a :class:`NotFoundError` answers 404 (the app shell maps it), never a 409 that would
leak that the id exists elsewhere; a bus handler turns the same error (or a ``None`` from
:func:`visible`) into the rejection event of its command.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from switchboard.runtime.errors import SwitchboardRuntimeError


class Owned(Protocol):
    """Anything that belongs to a workspace (accounts, campaigns, records, sessions)."""

    @property
    def workspace_id(self) -> str: ...


T = TypeVar("T", bound=Owned)


class NotFoundError(SwitchboardRuntimeError, LookupError):
    """The named object does not exist for the caller's workspace (HTTP 404)."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"no {kind} {ident!r}")
        self.kind = kind
        self.ident = ident
        self.message = f"no {kind} {ident!r}"


def visible(found: T | None, workspace: str) -> T | None:
    """``found`` when it exists and belongs to ``workspace``; otherwise None."""
    if found is None or found.workspace_id != workspace:
        return None
    return found


def require(found: T | None, workspace: str, kind: str, ident: str) -> T:
    """``found`` when it belongs to ``workspace``; otherwise :class:`NotFoundError`."""
    owned = visible(found, workspace)
    if owned is None:
        raise NotFoundError(kind, ident)
    return owned
