"""The MTProto gateway under test speaking real MTProto: a stock Telethon client against the
sandbox's wire-level fake Telegram."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from switchboard.mtproto import bootstrap as mtproto_bootstrap
from switchboard.mtproto.ports import MtprotoAdapter
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.mtproto.telethon_adapter import DataCenter, TelethonAdapter
from switchboard.sandbox import Sandbox


async def _nothing() -> None:
    return None


async def gateway_on_the_wire_fake(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the sandbox's wire server; gateways created from now on connect to it with
    Telethon (its data center as theirs) instead of the in-process fake adapter."""
    await box.mtproto_wire.start()
    center = DataCenter.from_descriptor(box.mtproto_wire.descriptor())

    def telethon_on_the_wire_fake(
        _: MtprotoSettings,
    ) -> tuple[MtprotoAdapter, Callable[[], Awaitable[None]]]:
        return TelethonAdapter(timeout=15.0, data_center=center), _nothing

    monkeypatch.setattr(mtproto_bootstrap, "make_adapter", telethon_on_the_wire_fake)
