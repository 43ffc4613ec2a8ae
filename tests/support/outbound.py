"""The outbound stack e2e tests stand up: accounts that point at the sandbox, the outbound
service in process (with the sandbox served beside it) or as separate instances, and the
text send commands they publish."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutText, SendMessage
from switchboard.outbound.app import create_app
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import free_port
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import ServiceProcess, serve_app
from switchboard.sandbox import Sandbox
from switchboard.sandbox.testing import serve
from tests.support.stack import keyring, service_env


def sandbox_account(
    sandbox: str,
    channel: Channel,
    account: str,
    secrets: Mapping[str, str],
    workspace: str = "demo",
    **settings: Any,
) -> Account:
    """An account of ``channel`` whose provider API is the sandbox served at ``sandbox``."""
    return Account(
        channel=channel,
        id=account,
        workspace_id=workspace,
        settings={"api_base_url": f"{sandbox}/{channel.value}", **settings},
        secrets=dict(secrets),
    )


def text_send(
    message_id: str,
    recipient: str,
    text: str,
    *,
    account: str = "shop",
    channel: Channel = Channel.TELEGRAM,
    **options: Any,
) -> SendMessage:
    """A text ``SendMessage`` through ``account`` (the Telegram bot ``shop`` unless named);
    ``options`` are its other fields (``not_before``, ``campaign_id``...)."""
    return SendMessage(
        message_id=message_id,
        channel=channel,
        account=account,
        recipient=recipient,
        content=OutText(text=text),
        **options,
    )


def telegram_shop(sandbox: str, token: str) -> Account:
    """The bot most outbound tests send through: account ``shop`` of workspace ``demo``."""
    return sandbox_account(sandbox, Channel.TELEGRAM, "shop", {"token": token})


def capi_pixel(sandbox: str, pixel: str, token: str, workspace: str = "demo") -> Account:
    """A Meta pixel whose Conversions API is the sandbox's Graph API."""
    return Account(
        channel=Channel.GENERIC,
        id=pixel,
        workspace_id=workspace,
        settings={
            "provider": "metacapi",
            "api_base_url": f"{sandbox}/graph",
            "graph_version": "v25.0",
        },
        secrets={"access_token": token},
    )


async def register(
    bus: Bus, *accounts: Account, duplicate_window_s: float | None = None
) -> AccountStore:
    """Provision the bus (with JetStream's ``duplicate_window_s`` when given) and put
    ``accounts`` in its registry (sealed with the test keys)."""
    await bus.provision(duplicate_window_s=duplicate_window_s)
    store = AccountStore(await bus.kv("accounts"), keyring())
    for account in accounts:
        await store.put(account)
    return store


def start_outbound_instances(
    env: Mapping[str, str], logs: Path, count: int = 2
) -> dict[str, ServiceProcess]:
    """``count`` outbound processes ``out0``... on free ports, started (await ``ready()``)."""
    procs: dict[str, ServiceProcess] = {}
    for i in range(count):
        port = free_port()
        procs[f"out{i}"] = ServiceProcess(
            "switchboard.outbound",
            {
                **env,
                "SWITCHBOARD_OUTBOUND_HTTP_PORT": str(port),
                "SWITCHBOARD_OUTBOUND_INSTANCE_ID": f"out{i}",
            },
            logs / f"outbound{i}.log",
            port=port,
        ).start()
    return procs


@dataclass
class OutboundStack:
    """The sandbox and its URL, the outbound service's URL, a bus and an HTTP client."""

    box: Sandbox
    sandbox: str
    url: str
    bus: Bus
    http: httpx.AsyncClient
    accounts: AccountStore


@asynccontextmanager
async def outbound_stack(
    box: Sandbox,
    nats_url: str,
    monkeypatch: pytest.MonkeyPatch,
    accounts: Callable[[str], list[Account]],
    timeout: float = 60,
    duplicate_window_s: float | None = None,
    **env: Any,
) -> AsyncIterator[OutboundStack]:
    """The sandbox served, ``accounts(sandbox_url)`` registered, and the outbound service
    in process with the test settings plus ``env`` (SWITCHBOARD_* names)."""
    async with serve(box.app()) as sandbox, AsyncExitStack() as stack:
        for key, value in service_env(nats_url, **env).items():
            monkeypatch.setenv(key, value)
        bus = await Bus.connect(nats_url, name="test")
        stack.push_async_callback(bus.close)
        store = await register(bus, *accounts(sandbox), duplicate_window_s=duplicate_window_s)
        url = await stack.enter_async_context(
            serve_app(create_app(load_settings(OutboundSettings)))
        )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=timeout))
        yield OutboundStack(box, sandbox, url, bus, http, store)
