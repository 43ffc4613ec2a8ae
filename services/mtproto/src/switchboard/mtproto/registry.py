"""User sessions in the shared accounts registry (``accounts`` KV, channel ``mtproto``), so
outbound knows which workspace owns a session and whether it can send: a send through
another workspace's session is an unknown account, one through a revoked session fails at
once instead of waiting for a holder that will never come."""

from __future__ import annotations

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
    found = await accounts.get(Channel.MTPROTO, session_id)
    settings = dict(found.settings) if found is not None else {}
    if (
        found is not None
        and found.workspace_id == workspace_id
        and settings.get("status") == status
    ):
        return
    settings["status"] = status
    await accounts.put(
        Account(
            channel=Channel.MTPROTO,
            id=session_id,
            workspace_id=workspace_id,
            settings=settings,
        )
    )


async def forget(accounts: AccountStore, session_id: str) -> None:
    """A session logged out: it is no account any more."""
    await accounts.delete(Channel.MTPROTO, session_id)


async def restrict(
    accounts: AccountStore, session_id: str, workspace_id: str, until: datetime
) -> None:
    """Telegram restricted the account (PEER_FLOOD: it may not write to strangers for now):
    outbound sends it nothing until ``until``; then a send tells whether it still is."""
    found = await accounts.get(Channel.MTPROTO, session_id)
    if found is None or found.workspace_id != workspace_id:
        return
    settings = {**found.settings, "restricted_until": until.isoformat()}
    await accounts.put(found.model_copy(update={"settings": settings}))
