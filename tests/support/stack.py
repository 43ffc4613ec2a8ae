"""Builds settings for services under test and registers accounts."""

from __future__ import annotations

from typing import Any

import httpx

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring

KEY = "k1:" + Keyring.generate_key()
API_KEY = "test-key-000001"
OTHER_KEY = "other-key-00002"


def keyring() -> Keyring:
    kid, _, material = KEY.partition(":")
    import base64

    return Keyring({kid: base64.b64decode(material)}, kid)


def service_env(nats_url: str, database_url: str | None = None, **extra: Any) -> dict[str, str]:
    env = {
        "SWITCHBOARD_NATS_URL": nats_url,
        "SWITCHBOARD_ENCRYPTION_KEYS": KEY,
        "SWITCHBOARD_API_KEYS": f"{API_KEY}=demo,{OTHER_KEY}=other",
        "SWITCHBOARD_LOG_JSON": "true",
        "SWITCHBOARD_HTTP_PORT": "0",
    }
    if database_url:
        env["SWITCHBOARD_DATABASE_URL"] = database_url
    env.update({k: str(v) for k, v in extra.items()})
    return env


async def add_telegram_account(
    nats_url: str, account: str = "demo", secret: str = "s3cret-token", workspace: str = "demo"
) -> Account:
    bus = await Bus.connect(nats_url, name="test-setup")
    try:
        await bus.provision()
        store = AccountStore(await bus.kv("accounts"), keyring())
        return await store.put(
            Account(
                channel=Channel.TELEGRAM,
                id=account,
                workspace_id=workspace,
                secrets={"token": "100000001:test", "webhook_secret": secret},
            )
        )
    finally:
        await bus.close()


async def stored_account(nats_url: str, channel: Channel, account: str) -> Account | None:
    """An account as the registry holds it now (None when it holds none by that id)."""
    bus = await Bus.connect(nats_url, name="test-setup")
    try:
        return await AccountStore(await bus.kv("accounts"), keyring()).get(channel, account)
    finally:
        await bus.close()


async def webhook_secret(nats_url: str, account: str) -> str:
    """The generated webhook secret of a Telegram account, read back from the registry."""
    found = await stored_account(nats_url, Channel.TELEGRAM, account)
    assert found is not None
    return found.secrets["webhook_secret"]


async def add_account(
    http: httpx.AsyncClient, ingest_url: str, admin: str, body: dict[str, Any]
) -> None:
    """Add an account the way an operator does: ingest's admin API (201)."""
    r = await http.post(
        f"{ingest_url}/admin/accounts", headers={"Authorization": f"Bearer {admin}"}, json=body
    )
    assert r.status_code == 201, r.text


async def register_bot(
    http: httpx.AsyncClient, ingest_url: str, admin: str, account: str, token: str, sandbox: str
) -> None:
    """Add a Telegram bot the way an operator does: ingest's admin API, which calls getMe and
    setWebhook on the (sandbox) Bot API; outbound sends through the same sandbox."""
    await add_account(
        http,
        ingest_url,
        admin,
        {
            "channel": "telegram",
            "id": account,
            "workspace_id": "demo",
            "secrets": {"token": token},
            "settings": {"api_base_url": f"{sandbox}/telegram"},
        },
    )


async def register_number(
    http: httpx.AsyncClient,
    ingest_url: str,
    admin: str,
    account: str,
    number: str,
    sandbox: str,
    *,
    app_secret: str,
    verify_token: str,
    access_token: str = "wa-token",
) -> None:
    """Add a WhatsApp number of workspace ``demo`` through ingest's admin API, its Cloud API
    the sandbox's."""
    await add_account(
        http,
        ingest_url,
        admin,
        {
            "channel": "whatsapp",
            "id": account,
            "workspace_id": "demo",
            "secrets": {
                "app_secret": app_secret,
                "verify_token": verify_token,
                "access_token": access_token,
            },
            "settings": {"phone_number_id": number, "api_base_url": f"{sandbox}/whatsapp"},
        },
    )
