"""A session's account in the shared registry is written by different tasks (its status by
the holder, a restriction by a send): each change is made on the revision it read, so one
never writes the other's old value back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from switchboard.events.catalog.common import Channel
from switchboard.mtproto import registry
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus

from .mtproto_support import keyring


async def test_a_restriction_landing_during_a_revocation_is_kept(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="test-registry")
    try:
        await bus.provision()
        kv = await bus.kv("accounts")
        holder, sender = AccountStore(kv, keyring()), AccountStore(kv, keyring())
        await registry.register(holder, "s1", "demo", "active")
        until = datetime(2030, 1, 1, tzinfo=UTC)
        read = holder.read
        landed: list[bool] = []

        async def read_then_a_send_restricts(*args: Any) -> tuple[Account, int] | None:
            found = await read(*args)
            if not landed:  # between the revocation's read and its write
                landed.append(True)
                await registry.restrict(sender, "s1", "demo", until)
            return found

        holder.read = read_then_a_send_restricts  # type: ignore[method-assign]
        await registry.register(holder, "s1", "demo", "revoked")
        final = await sender.get(Channel.MTPROTO, "s1")
        assert final is not None
        assert final.settings["status"] == "revoked"
        assert final.settings["restricted_until"] == until.isoformat()
    finally:
        await bus.close()
