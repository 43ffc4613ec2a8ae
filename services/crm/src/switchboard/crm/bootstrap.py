"""The CRM composition root's dependencies: built complete and typed once the runtime is up,
before the service answers, and handed to the consumers and the routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from switchboard.crm.media import ProviderMedia
from switchboard.crm.settings import CrmSettings
from switchboard.crm.store import EventStore
from switchboard.runtime.accounts import AccountCache, AccountStore
from switchboard.runtime.breaker import Breakers
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.logging import register_secret
from switchboard.runtime.objectstore import ObjectStore, open_store
from switchboard.runtime.service import Runtime
from switchboard.runtime.settings import parse_keyring


@dataclass(frozen=True)
class CrmDeps:
    """Everything the CRM routes use. ``accounts`` is None without encryption keys (the
    media routes then cannot read provider tokens)."""

    pool: asyncpg.Pool
    bus: Bus
    store: EventStore
    accounts: AccountCache | None
    media: ProviderMedia
    objects: ObjectStore
    # The time a download's deadline is set on: the gateway, another process, judges it on
    # the same one (the server's clock, ``Runtime.clock``).
    now: Callable[[], datetime]

    def media_ports(self) -> dict[str, Any]:
        """What the media routes look up by name (``media_api.media_routes``)."""
        # bus: user-account files are asked of the gateway (user_files.py)
        ports: dict[str, Any] = {
            "pool": self.pool,
            "media": self.media,
            "objects": self.objects,
            "bus": self.bus,
            "now": self.now,
        }
        if self.accounts is not None:
            ports["accounts"] = self.accounts
        return ports


async def bootstrap(rt: Runtime, settings: CrmSettings) -> CrmDeps:
    """The service's dependencies; the media client and the object store close with the
    runtime. Nothing runs yet: the start spawns the account watch."""
    assert rt.pool is not None  # the CRM declares a schema, so the runtime opened a pool
    accounts = None
    keys = settings.encryption_keys
    if keys is not None:
        register_secret(keys.get_secret_value())
        keyring = Keyring.from_mapping(parse_keyring(keys.get_secret_value()))
        accounts = AccountCache(AccountStore(await rt.bus.kv("accounts"), keyring))
    http = httpx.AsyncClient(timeout=settings.media_timeout_s, follow_redirects=True)
    rt.on_close(http.aclose)
    breakers = Breakers(settings.media_breaker_threshold, settings.media_breaker_cooldown_s)
    objects = await open_store(settings.objects)
    rt.on_close(objects.close)
    return CrmDeps(
        pool=rt.pool,
        bus=rt.bus,
        store=EventStore(rt.bus),
        accounts=accounts,
        media=ProviderMedia(http, breakers, private_urls=settings.media_private_urls),
        objects=objects,
        now=rt.clock.utcnow,
    )
