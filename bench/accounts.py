"""The Telegram accounts the benchmarks put in the account store, as an operator would."""

from __future__ import annotations

from collections.abc import Mapping

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.settings import parse_keyring


def new_keys() -> str:
    """A fresh ``SWITCHBOARD_ENCRYPTION_KEYS`` value with one key."""
    return f"b1:{Keyring.generate_key()}"


async def store_telegram(
    bus: Bus, keys: str, bots: Mapping[str, Mapping[str, str]], sandbox: str | None = None
) -> None:
    """Telegram accounts of workspace ``bench`` (id -> secrets) sealed with ``keys``, their
    Bot API the sandbox's at ``sandbox`` when given."""
    store = AccountStore(await bus.kv("accounts"), Keyring.from_mapping(parse_keyring(keys)))
    for account, secrets in bots.items():
        await store.put(
            Account(
                channel=Channel.TELEGRAM,
                id=account,
                workspace_id="bench",
                secrets=dict(secrets),
                settings={"api_base_url": f"{sandbox}/telegram"} if sandbox else {},
            )
        )
