"""Fault injection on the WhatsApp fake: latency, 5xx in Graph shape, outages, per number."""

from __future__ import annotations

import asyncio

from .messaging_support import PHONE_ID, TEMPLATE, whatsapp_env

USER = "4915112345678"


async def test_latency_5xx_and_outage_apply_to_the_whatsapp_api() -> None:
    async with whatsapp_env() as env:
        box = env.sandbox
        box.set_fault("whatsapp", PHONE_ID, latency=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await env.send(USER, "template", **TEMPLATE)).status_code == 200
        assert loop.time() - started >= 0.2
        assert box.recorder.requests(provider="whatsapp")[-1].fault == "latency"

        box.set_fault("whatsapp", PHONE_ID, error_rate=1.0, error_status=500)
        failed = await env.send("4915112345679", "template", **TEMPLATE)
        assert failed.status_code == 500
        error = failed.json()["error"]
        assert (error["code"], error["is_transient"]) == (1, True)
        assert error["message"] == "An unknown error has occurred."

        box.set_fault("whatsapp", PHONE_ID, outage_until=box.clock.time() + 60)
        down = await env.send("4915112345680", "template", **TEMPLATE)
        assert down.status_code == 503
        assert down.json()["error"]["code"] == 2
        record = box.recorder.requests(provider="whatsapp")[-1]
        assert (record.fault, record.account, record.ok) == ("outage", PHONE_ID, False)
        assert len(env.sandbox.whatsapp.sent_messages(PHONE_ID)) == 1  # faults send nothing


async def test_faults_are_scoped_to_one_number_over_the_control_api() -> None:
    async with whatsapp_env() as env:
        env.sandbox.whatsapp.add_number("200000000000001", "second-token")
        rule = await env.http.post(
            "/_sandbox/faults",
            json={"provider": "whatsapp", "account": "+1 555 123 4567", "error_rate": 1.0},
        )
        assert rule.json()["account"] == PHONE_ID  # display number normalized to the id
        assert (await env.send(USER, "template", **TEMPLATE)).status_code == 500
        other = await env.http.post(
            "/v21.0/200000000000001/messages",
            json={
                "messaging_product": "whatsapp",
                "to": USER,
                "type": "template",
                "template": TEMPLATE,
            },
            headers={"Authorization": "Bearer second-token"},
        )
        assert other.status_code == 200
