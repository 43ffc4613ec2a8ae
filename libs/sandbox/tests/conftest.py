"""Fixtures: a sandbox with fast webhook retries, its Telegram app served on a free port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from switchboard.sandbox import ManualClock, RetryPolicy, Sandbox, SandboxConfig
from switchboard.sandbox.telegram import TgBot
from switchboard.sandbox.testing import serve, serve_provider

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def fast_config(**telegram: Any) -> SandboxConfig:
    config = SandboxConfig()
    config.telegram.webhook_retry = RetryPolicy(initial=0.02, factor=2.0, maximum=0.1, timeout=2.0)
    for name, value in telegram.items():
        setattr(config.telegram, name, value)
    return config


@dataclass
class TelegramEnv:
    """A served Telegram fake: the sandbox handle, its URL, a client and one bot."""

    sandbox: Sandbox
    url: str
    http: httpx.AsyncClient
    bot: TgBot

    async def call(self, method: str, *, token: str = TOKEN, **params: Any) -> httpx.Response:
        return await self.http.post(f"/bot{token}/{method}", json=params)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(fast_config())
    yield box
    await box.aclose()


@pytest.fixture
async def tg(sandbox: Sandbox) -> AsyncIterator[TelegramEnv]:
    bot = sandbox.telegram.add_bot(TOKEN, "test_shop_bot", "Test Shop")
    async with (
        serve(sandbox.provider_app("telegram")) as url,
        httpx.AsyncClient(base_url=url, trust_env=False) as http,
    ):
        yield TelegramEnv(sandbox, url, http, bot)


@dataclass
class ClockedEnv(TelegramEnv):
    """A served Telegram fake whose time only moves when the test says so."""

    clock: ManualClock


@pytest.fixture
async def clocked() -> AsyncIterator[ClockedEnv]:
    clock = ManualClock()
    box = Sandbox(fast_config(), clock=clock)
    bot = box.telegram.add_bot(TOKEN, "test_shop_bot", "Test Shop")
    async with serve_provider(box, "telegram") as (url, http):
        yield ClockedEnv(box, url, http, bot, clock)
