"""User sessions in the shared accounts registry (``accounts`` KV, channel ``mtproto``), so
outbound knows which workspace owns a session and whether it can send: a send through
another workspace's session is an unknown account, one through a revoked session fails at
once instead of waiting for a holder that will never come."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account, AccountStore

Status = Literal["active", "revoked"]


async def register(
    accounts: AccountStore, session_id: str, workspace_id: str, status: Status
) -> None:
    """Record the session as an account of its workspace with ``status``; settings an
    operator set on it (``limits``) are kept."""

    def registered(found: Account | None) -> Account | None:
        settings = dict(found.settings) if found is not None else {}
        if (
            found is not None
            and found.workspace_id == workspace_id
            and settings.get("status") == status
        ):
            return None
        settings["status"] = status
        return Account(
            channel=Channel.MTPROTO, id=session_id, workspace_id=workspace_id, settings=settings
        )

    await _change(accounts, session_id, registered)


async def forget(accounts: AccountStore, session_id: str) -> None:
    """A session logged out: it is no account any more."""
    await accounts.delete(Channel.MTPROTO, session_id)


async def restrict(
    accounts: AccountStore, session_id: str, workspace_id: str, until: datetime
) -> None:
    """Telegram restricted the account (PEER_FLOOD: it may not write to strangers for now):
    outbound sends it nothing until ``until``; then a send tells whether it still is."""

    def restricted(found: Account | None) -> Account | None:
        if found is None or found.workspace_id != workspace_id:
            return None
        settings = {**found.settings, "restricted_until": until.isoformat()}
        return found.model_copy(update={"settings": settings})

    await _change(accounts, session_id, restricted)


async def _change(
    accounts: AccountStore, session_id: str, change: Callable[[Account | None], Account | None]
) -> None:
    """``change`` of the session's record (None: nothing to write), written on the revision
    it read, and read again when another write came first: the status (the holder) and a
    restriction (a send) are written by different tasks, and a plain put of one wrote the
    other's old value back (a revoked session active again, a restriction lost)."""
    while True:
        found = await accounts.read(Channel.MTPROTO, session_id)
        new = change(found[0] if found is not None else None)
        if new is None:
            return
        if found is None:
            if await accounts.create(new) is not None:
                return
        elif await accounts.update(new, found[1]) is not None:
            return
