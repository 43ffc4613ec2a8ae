"""Makes the gateway's one MTProto adapter: Telethon, talking to real Telegram or, with
``adapter=sandbox``, to the sandbox's wire-level MTProto fake (tests, and ``switchboard
up`` offline). Either way the code that runs is ``telethon_adapter``; only the server
differs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from switchboard.mtproto.ports import DisconnectedError, MtprotoAdapter
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.mtproto.telethon_adapter import DataCenter, Locator, TelethonAdapter


async def _nothing() -> None:
    return None


def sandbox_locator(sandbox_url: str, *, timeout: float = 10.0) -> Locator:
    """Reads the sandbox's ``GET /mtproto/server`` before each connect: a sandbox that
    restarted may listen on another port. An unreachable sandbox is a dropped connection
    (the gateway reconnects with backoff)."""
    url = f"{sandbox_url.rstrip('/')}/mtproto/server"

    async def locate() -> DataCenter:
        try:
            async with httpx.AsyncClient(timeout=timeout) as http:
                response = await http.get(url)
                response.raise_for_status()
                return DataCenter.from_descriptor(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise DisconnectedError(f"no MTProto server at {url}: {exc}") from exc

    return locate


def make_adapter(settings: MtprotoSettings) -> tuple[MtprotoAdapter, Callable[[], Awaitable[None]]]:
    """The adapter and what closes it at shutdown."""
    timeout = settings.rpc_timeout_s
    if settings.adapter == "sandbox" or settings.sandbox_url:
        # adapter=telethon with a sandbox_url is the same: Telethon against the sandbox.
        assert settings.sandbox_url is not None  # the settings refuse sandbox without it
        return TelethonAdapter(
            timeout=timeout, locate=sandbox_locator(settings.sandbox_url)
        ), _nothing
    return TelethonAdapter(timeout=timeout), _nothing
