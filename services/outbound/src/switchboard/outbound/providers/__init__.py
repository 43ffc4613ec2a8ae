"""Provider clients of the outbound service, and the registry the core picks them from.

Each client makes exactly one attempt per call, with an explicit timeout, and raises a
classified `ProviderError` (see `base`); retries, backoff, rate limits and circuit
breaking belong to the outbound core. All clients share the one `httpx.AsyncClient` the
service injects.
"""

from __future__ import annotations

import httpx

from switchboard.outbound.providers.base import (
    Failure,
    MessagingClient,
    ProviderError,
    Scope,
    Sent,
)
from switchboard.outbound.providers.files import FileIdCache, FileKey, InMemoryFileIdCache
from switchboard.outbound.providers.telegram import TelegramClient
from switchboard.outbound.providers.viber import ViberClient
from switchboard.outbound.providers.webhooks import GenericWebhookClient
from switchboard.outbound.providers.whatsapp import WhatsAppClient

__all__ = [
    "Failure",
    "FileIdCache",
    "FileKey",
    "GenericWebhookClient",
    "InMemoryFileIdCache",
    "MessagingClient",
    "ProviderError",
    "Scope",
    "Sent",
    "TelegramClient",
    "ViberClient",
    "WhatsAppClient",
    "messaging_clients",
]


def messaging_clients(
    http: httpx.AsyncClient, *, file_ids: FileIdCache | None = None
) -> dict[str, MessagingClient]:
    """One client per chat channel ("telegram", "whatsapp", "viber", "generic"), all on
    `http`. `file_ids` is shared by Telegram and WhatsApp (keys name the channel); by
    default an in-memory LRU for this process."""
    cache: FileIdCache = file_ids if file_ids is not None else InMemoryFileIdCache()
    clients: list[MessagingClient] = [
        TelegramClient(http, file_ids=cache),
        WhatsAppClient(http, file_ids=cache),
        ViberClient(http),
        GenericWebhookClient(http),
    ]
    return {client.channel: client for client in clients}
