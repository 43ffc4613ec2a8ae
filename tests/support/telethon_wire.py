"""The MTProto gateway under test speaking real MTProto: a stock Telethon client against the
sandbox's wire-level fake Telegram."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from switchboard.mtproto import bootstrap as mtproto_bootstrap
from switchboard.mtproto.ports import MtprotoAdapter
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.mtproto.telethon_adapter import DataCenter, TelethonAdapter
from switchboard.sandbox import Sandbox
from tests.support.stack import KEY

API_ID, API_HASH = 12345, "0123456789abcdef0123456789abcdef"


def telethon_gateway(nats_url: str, postgres_url: str, **overrides: Any) -> MtprotoSettings:
    """Settings of a gateway whose sessions Telethon connects (to the wire-level fake, after
    :func:`gateway_on_the_wire_fake`): the suite's keys, short leases and ticks, any port."""
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "database_url": postgres_url,
        "encryption_keys": KEY,
        "adapter": "telethon",
        "api_id": API_ID,
        "api_hash": API_HASH,
        "lease_ttl_s": 3.0,
        "tick_s": 0.25,
        "http_port": 0,
        "log_json": True,
    }
    values.update(overrides)
    return MtprotoSettings(**values)


async def hand_over_session(http: httpx.AsyncClient, session_id: str, session: str) -> None:
    """Give workspace demo's Telethon ``session`` to the gateway that ``http`` is based at,
    as ``session_id``, through its API (201)."""
    r = await http.put(
        f"/v1/sessions/{session_id}",
        json={"session": session, "api_id": API_ID, "api_hash": API_HASH, "workspace_id": "demo"},
    )
    assert r.status_code == 201, r.text


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
