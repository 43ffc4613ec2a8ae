"""Picks the MTProto adapter the settings name: Telethon (real Telegram) or the sandbox's
fake Telegram (tests, and ``switchboard up`` offline). Imported lazily, so a process never
loads the adapter it does not use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from switchboard.mtproto.ports import MtprotoAdapter
from switchboard.mtproto.settings import MtprotoSettings


async def _nothing() -> None:
    return None


async def make_adapter(
    settings: MtprotoSettings,
) -> tuple[MtprotoAdapter, Callable[[], Awaitable[None]]]:
    """The adapter and what closes it at shutdown."""
    if settings.adapter == "sandbox":
        from switchboard.mtproto.sandbox_adapter import SandboxMtprotoAdapter

        sandbox = SandboxMtprotoAdapter(f"{settings.sandbox_url}/mtproto")
        return sandbox, sandbox.aclose
    from switchboard.mtproto.telethon_adapter import DataCenter, TelethonAdapter

    if settings.sandbox_url:
        # Telethon against the sandbox's wire-level MTProto fake: its descriptor names the
        # server and the RSA key to trust.
        import httpx

        async with httpx.AsyncClient(timeout=10.0) as http:
            answer = await http.get(f"{settings.sandbox_url}/mtproto/server")
        answer.raise_for_status()
        center = DataCenter.from_descriptor(answer.json())
        return TelethonAdapter(timeout=settings.rpc_timeout_s, data_center=center), _nothing
    return TelethonAdapter(timeout=settings.rpc_timeout_s), _nothing
