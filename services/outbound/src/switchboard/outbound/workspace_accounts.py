"""The account a request names must be its workspace's: one check for the send, interaction,
campaign and calendar routes. Another workspace's account is a 404, as if it did not exist."""

from __future__ import annotations

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account, AccountCache
from switchboard.runtime.ownership import NotFoundError


async def require_account(
    accounts: AccountCache, workspace: str, channel: Channel, name: str
) -> Account:
    """The workspace's account ``channel``/``name``; :class:`NotFoundError` otherwise."""
    found = await accounts.lookup(channel, name, workspace)
    if found is None:
        raise NotFoundError("account", f"{channel.value}/{name}")
    return found


async def require_named(accounts: AccountCache, workspace: str, name: str) -> None:
    """An account ``name`` of the workspace on some channel (a campaign's batch may come
    before its start says which); :class:`NotFoundError` otherwise."""
    for channel in Channel:
        if await accounts.lookup(channel, name, workspace) is not None:
            return
    raise NotFoundError("account", name)
