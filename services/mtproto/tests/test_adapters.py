"""The one adapter either way: Telethon to Telegram's own servers, or to the server the
sandbox's ``GET /mtproto/server`` names (read before each connect; an unreachable or
nonsensical answer is a dropped connection the gateway retries)."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.mtproto.adapters import make_adapter, sandbox_locator
from switchboard.mtproto.ports import DisconnectedError
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.mtproto.telethon_adapter import TelethonAdapter
from switchboard.runtime.embedded import free_port
from switchboard.runtime.settings import load_settings
from switchboard.sandbox import Sandbox
from switchboard.sandbox.testing import serve

from .mtproto_support import KEY


def _settings(**overrides: Any) -> MtprotoSettings:
    return load_settings(MtprotoSettings, **{"encryption_keys": KEY, **overrides})


async def test_telethon_talks_to_telegram_unless_told_the_sandbox() -> None:
    real, close = make_adapter(_settings())
    assert isinstance(real, TelethonAdapter)
    assert (real.data_center, real.locate) == (None, None)
    await close()
    fake, _ = make_adapter(_settings(adapter="sandbox", sandbox_url="http://127.0.0.1:9"))
    assert isinstance(fake, TelethonAdapter)
    assert fake.locate is not None


async def test_the_locator_reads_the_sandbox_descriptor() -> None:
    sandbox = Sandbox()
    async with serve(sandbox.app()) as url:
        center = await sandbox_locator(url + "/")()
        assert (center.host, center.port) == ("127.0.0.1", sandbox.mtproto_wire.port)
        assert center.rsa_public_key is not None
        assert center.rsa_public_key.startswith("-----BEGIN RSA PUBLIC KEY-----")
        with pytest.raises(DisconnectedError, match="no MTProto server"):
            await sandbox_locator(url + "/_sandbox/health/nothing")()
    with pytest.raises(DisconnectedError, match="no MTProto server"):
        await sandbox_locator(f"http://127.0.0.1:{free_port()}", timeout=2)()
