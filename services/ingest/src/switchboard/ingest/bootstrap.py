"""The ingest composition root's dependencies: built complete and typed once the runtime is
up, before the service answers, and handed to the webhook handler and the admin routes."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from switchboard.ingest import admin
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.accounts import AccountCache, AccountStore
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.integrations import Prober
from switchboard.runtime.service import Runtime

# The providers whose webhooks ingest registers, probed for /health/integrations.
PROBED = ("telegram", "viber", "whatsapp")


@dataclass(frozen=True)
class IngestDeps:
    """Everything the webhook handler and the admin routes use."""

    store: AccountStore
    cache: AccountCache
    http: httpx.AsyncClient
    prober: Prober


async def bootstrap(
    rt: Runtime, keyring: Keyring, providers: admin.Providers, settings: IngestSettings
) -> IngestDeps:
    """The service's dependencies; the provider client closes with the runtime. Nothing runs
    yet: the start spawns the account watch and the probes."""
    store = AccountStore(await rt.bus.kv("accounts"), keyring)
    cache = AccountCache(store)
    http = httpx.AsyncClient()
    rt.on_close(http.aclose)
    # Webhook registration needs each bot's credentials to stay good: probe them.
    prober = Prober(
        http,
        providers.endpoints(),
        cache.all,
        PROBED,
        settings.probe_interval_s,
        webhook_url=lambda a: admin.webhook_url(providers, a),
    )
    return IngestDeps(store=store, cache=cache, http=http, prober=prober)
