"""The client registry, the file-id cache and the shared transport helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from switchboard.outbound.providers import (
    GenericWebhookClient,
    MessagingClient,
    TelegramClient,
    ViberClient,
    WhatsAppClient,
    messaging_clients,
)
from switchboard.outbound.providers.base import Failure, ProviderError
from switchboard.outbound.providers.files import FileKey, InMemoryFileIdCache
from switchboard.outbound.providers.transport import (
    missing_config,
    redact,
    required_secret,
    retry_after_header,
)

from .support import TG_TOKEN, VIBER_TOKEN, account, command, text


async def test_registry_has_one_client_per_chat_channel_sharing_the_cache() -> None:
    cache = InMemoryFileIdCache()
    async with httpx.AsyncClient() as http:
        clients = messaging_clients(http, file_ids=cache)
        assert set(clients) == {"telegram", "whatsapp", "viber", "generic"}
        assert isinstance(clients["telegram"], TelegramClient)
        assert isinstance(clients["whatsapp"], WhatsAppClient)
        assert isinstance(clients["viber"], ViberClient)
        assert isinstance(clients["generic"], GenericWebhookClient)
        telegram, whatsapp = clients["telegram"], clients["whatsapp"]
        assert isinstance(telegram, TelegramClient)
        assert isinstance(whatsapp, WhatsAppClient)
        assert telegram.file_ids is cache
        assert whatsapp.file_ids is cache
        assert telegram.http is http
        typed: dict[str, MessagingClient] = clients
        assert all(name == client.channel for name, client in typed.items())


async def test_lru_cache_evicts_the_oldest_and_expires() -> None:
    now = [0.0]
    cache = InMemoryFileIdCache(max_entries=2, clock=lambda: now[0])
    a, b, c = (FileKey.for_url("telegram:1", "photo", f"https://x.test/{n}") for n in "abc")
    await cache.put(a, "A")
    await cache.put(b, "B", ttl=10)
    assert await cache.get(a) == "A"  # a is now the most recently used
    await cache.put(c, "C")
    assert await cache.get(b) is None
    assert await cache.get(a) == "A"
    assert await cache.get(c) == "C"
    await cache.put(b, "B", ttl=10)
    now[0] = 10.0
    assert await cache.get(b) is None
    await cache.delete(a)
    assert await cache.get(a) is None


def test_file_keys_separate_owners_kinds_and_sources() -> None:
    photo = FileKey.for_bytes("telegram:1", "photo", b"x")
    assert photo.as_str().startswith("telegram:1/photo/sha256:")
    assert photo != FileKey.for_bytes("telegram:2", "photo", b"x")
    assert photo != FileKey.for_bytes("telegram:1", "document", b"x")
    assert FileKey.for_url("telegram:1", "photo", "x").digest.startswith("url:")


def test_retry_after_header_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_header({"retry-after": "5"}) == 5.0
    assert retry_after_header({"retry-after": "Thu, 01 Jan 2026 00:00:30 GMT"}, now) == 30.0
    assert retry_after_header({"retry-after": "Wed, 31 Dec 2025 00:00:00 GMT"}, now) == 0.0
    assert retry_after_header({"retry-after": "soon"}) is None
    assert retry_after_header({}) is None


def test_redact() -> None:
    assert redact("GET /bot123:abc/sendMessage", ["123:abc", ""]) == "GET /bot***/sendMessage"


def test_missing_config_is_permanent_and_names_what_the_account_needs() -> None:
    error = missing_config("webhook", "settings['url']", "secrets['signing_secret']")
    assert (error.failure, error.code) == (Failure.PERMANENT, "webhook_config")
    assert error.reason == "the account needs settings['url'] and secrets['signing_secret']"
    with pytest.raises(ProviderError) as caught:
        required_secret(account("viber", secrets={"token": ""}), "viber", "token")
    assert (caught.value.code, caught.value.reason) == (
        "viber_config",
        "the account needs secrets['token']",
    )
    assert required_secret(account("viber"), "viber", "token") == VIBER_TOKEN


@pytest.mark.parametrize("base", ["ftp://sandbox.test/telegram", "http://\x00/telegram"])
async def test_a_malformed_base_url_is_a_permanent_config_error(base: str) -> None:
    async with httpx.AsyncClient() as http:  # refused before any connection is tried
        with pytest.raises(ProviderError) as caught:
            await TelegramClient(http).send(
                account(settings={"api_base_url": base}), command(text())
            )
    assert caught.value.failure is Failure.PERMANENT
    assert caught.value.code == "telegram_config"
    assert TG_TOKEN not in caught.value.reason
