"""The accounts registry in the ``accounts`` KV bucket, shared by every service.

A channel account (a Telegram bot, a WhatsApp number, ...) has public settings and secrets;
secrets are stored only encrypted. Services keep a live cache fed by a KV watch, so changes
take effect in running instances without a restart.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field, model_validator

from switchboard.events.catalog.common import Channel
from switchboard.events.subjects import token
from switchboard.runtime.crypto import DecryptError, Keyring
from switchboard.runtime.kv import create, current, entries_of, replace
from switchboard.runtime.kvwatch import Mirror
from switchboard.runtime.logging import get_logger, register_secret
from switchboard.runtime.ownership import visible

log = get_logger(__name__)


ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
VALID_ID = re.compile(ID_PATTERN)


class Account(BaseModel):
    """A channel account. ``secrets`` are plaintext in memory only."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel
    id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
    workspace_id: str = Field("default", min_length=1)
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _unloggable(self) -> Account:
        # Wherever plaintext secrets exist in memory (an admin request, a decrypted record),
        # they are registered for redaction before any code can log or send them.
        for value in self.secrets.values():
            register_secret(value)
        return self

    @property
    def key(self) -> str:
        return account_key(self.channel, self.id)

    def public(self) -> dict[str, Any]:
        """What an API may show: settings, and the names (never values) of the secrets."""
        data = self.model_dump(mode="json", exclude={"secrets"})
        data["secrets"] = sorted(self.secrets)
        return data


@lru_cache(maxsize=65536)
def account_key(channel: Channel | str, account_id: str) -> str:
    """The KV key of an account (cached: looked up on every webhook)."""
    return f"{Channel(channel).value}.{token(account_id)}"


async def account_workspace(kv: KeyValue, channel: Channel | str, account_id: str) -> str | None:
    """The workspace an account belongs to (None: no such account), read from its record
    without opening its secrets: a service that only checks what a request names needs no
    encryption keys for it."""
    if not VALID_ID.fullmatch(account_id):
        return None
    found = await current(kv, account_key(channel, account_id))
    return None if found is None else str(json.loads(found.value).get("workspace_id", "default"))


class AccountStore:
    """Reads and writes accounts in KV, encrypting secrets with the keyring."""

    def __init__(self, kv: KeyValue, keyring: Keyring) -> None:
        self.kv = kv
        self.keyring = keyring

    def _seal(self, account: Account) -> bytes:
        data = account.model_dump(mode="json")
        aad = account.key.encode()
        data["secrets"] = {
            name: self.keyring.encrypt(value.encode(), aad + b"/" + name.encode())
            for name, value in account.secrets.items()
        }
        return json.dumps(data, sort_keys=True).encode()

    def _open(self, key: str, raw: bytes) -> Account:
        data = json.loads(raw)
        aad = key.encode()
        secrets = {
            name: self.keyring.decrypt(value, aad + b"/" + name.encode()).decode()
            for name, value in data.get("secrets", {}).items()
        }
        data["secrets"] = secrets
        for value in secrets.values():
            register_secret(value)
        return Account.model_validate(data)

    async def put(self, account: Account) -> Account:
        account = account.model_copy(update={"updated_at": datetime.now(UTC)})
        await self.kv.put(account.key, self._seal(account))
        return account

    async def create(self, account: Account) -> Account | None:
        """``account`` stored unless its key holds one already (None then): of two adds of
        one account at once, one is stored and the other told, never one overwriting the
        other's secrets."""
        account = account.model_copy(update={"updated_at": datetime.now(UTC)})
        stored = await create(self.kv, account.key, self._seal(account))
        return account if stored is not None else None

    async def get(self, channel: Channel | str, account_id: str) -> Account | None:
        found = await self.read(channel, account_id)
        return None if found is None else found[0]

    async def read(self, channel: Channel | str, account_id: str) -> tuple[Account, int] | None:
        """The account and the revision it was read at (what ``update`` is conditioned on)."""
        if not VALID_ID.fullmatch(account_id):
            return None  # no stored account can have it (and it is no valid KV key)
        key = account_key(channel, account_id)
        found = await current(self.kv, key)
        return None if found is None else (self._open(key, found.value), found.revision)

    async def update(self, account: Account, revision: int) -> Account | None:
        """``account`` stored if its record is still at ``revision``; None when another
        change came first (read it again)."""
        account = account.model_copy(update={"updated_at": datetime.now(UTC)})
        stored = await replace(self.kv, account.key, self._seal(account), revision)
        return account if stored is not None else None

    async def delete(self, channel: Channel | str, account_id: str) -> bool:
        """Remove an account; works even when its secrets use a key this instance lacks."""
        if not VALID_ID.fullmatch(account_id):
            return False
        key = account_key(channel, account_id)
        if await current(self.kv, key) is None:
            return False
        await self.kv.purge(key)
        return True

    async def scan(self) -> tuple[list[Account], list[tuple[str, str]]]:
        """Every account, split into the readable ones and ``(key, why)`` for records whose
        secrets the configured keys cannot open (a key retired before re-encryption)."""
        # A failing listing propagates: swallowing it made a timed-out listing look empty,
        # and a key rotation's re-encryption "succeed" with nothing rewritten.
        accounts: list[Account] = []
        unreadable: list[tuple[str, str]] = []
        for key, value, _ in sorted(await entries_of(self.kv)):
            try:
                accounts.append(self._open(key, value))
            except DecryptError as exc:
                log.error("unreadable account in registry", key=key, error=str(exc))
                unreadable.append((key, str(exc)))
        return accounts, unreadable

    async def list(self) -> list[Account]:
        """The readable accounts (see :meth:`scan` for the others)."""
        return (await self.scan())[0]

    async def reencrypt_all(self) -> int:
        """Rewrite every readable account with the active key (the last step of a key
        rotation); records no configured key opens are left as they are."""
        count = 0
        for account in await self.list():
            await self.kv.put(account.key, self._seal(account))
            count += 1
        return count


class AccountCache(Mirror[Account]):
    """A live, in-memory view of the registry fed by a KV watch."""

    def __init__(self, store: AccountStore) -> None:
        super().__init__(lambda: store.kv, store._open, "account in registry")
        self.store = store

    def get(self, channel: Channel | str, account_id: str) -> Account | None:
        return self.entries.get(account_key(channel, account_id))

    def owned(self, channel: Channel | str, account_id: str, workspace: str) -> Account | None:
        """The account when it belongs to ``workspace``: another workspace's is unknown."""
        return visible(self.get(channel, account_id), workspace)

    async def lookup(
        self, channel: Channel | str, account_id: str, workspace: str
    ) -> Account | None:
        """:meth:`owned`, asking the registry when the watch has not brought it yet (an API
        call right after the account was registered must not be refused)."""
        found = self.get(channel, account_id)
        if found is None:
            found = await self.store.get(channel, account_id)
        return visible(found, workspace)

    def all(self) -> list[Account]:
        return list(self.entries.values())
