"""Fault injection on the Viber fake: latency, 5xx and outages keep their HTTP status."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .messaging_support import viber_env

USER = "01234567890A="


async def test_latency_5xx_and_outage_apply_to_the_viber_api() -> None:
    async with viber_env() as env:
        box = env.sandbox
        box.set_fault("viber", env.bot.token, latency=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await env.send_text(USER))["status"] == 0
        assert loop.time() - started >= 0.2
        record = box.recorder.requests(provider="viber")[-1]
        assert (record.fault, record.account) == ("latency", "testshop")

        box.set_fault("viber", "testshop", error_rate=1.0, error_status=502)
        failed = await env.call("send_message", {"receiver": USER})
        assert failed.status_code == 502
        assert failed.json() == {"status_message": "Bad Gateway"}

        box.set_fault("viber", "testshop", outage_until=box.clock.time() + 60)
        down = await env.call("get_account_info")
        assert down.status_code == 503
        assert box.recorder.requests(provider="viber")[-1].fault == "outage"
        assert len(box.viber.sent_messages(env.bot)) == 1


async def test_connection_resets_surface_as_transport_errors() -> None:
    async with viber_env() as env:
        env.sandbox.set_fault("viber", reset_rate=1.0)
        with pytest.raises(httpx.TransportError):
            await env.send_text(USER)
        env.sandbox.clear_faults()
        assert (await env.send_text(USER))["status"] == 0
