"""Fault injection over real HTTP: 5xx rate, latency, hangs, resets, outages, scoping."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from switchboard.sandbox.clock import ManualClock
from switchboard.sandbox.faults import FaultInjector, FaultSpec
from switchboard.sandbox.testing import wait_until

from .conftest import TOKEN, ClockedEnv, TelegramEnv


async def test_error_rate_one_fails_every_call_in_telegram_shape(tg: TelegramEnv) -> None:
    tg.sandbox.set_fault("telegram", error_rate=1.0, error_status=502)
    response = await tg.call("getMe")
    assert response.status_code == 502
    assert response.json() == {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    record = tg.sandbox.recorder.requests()[-1]
    assert (record.status, record.fault, record.ok) == (502, "error", False)


def test_seeded_error_rate_is_deterministic() -> None:
    def pattern(seed: int) -> list[str]:
        injector = FaultInjector(ManualClock())
        injector.set(FaultSpec(error_rate=0.3, seed=seed), provider="telegram")
        return [injector.decide("telegram", "1", "sendMessage").kind for _ in range(200)]

    first, again, other = pattern(7), pattern(7), pattern(8)
    assert first == again
    assert first != other
    assert 30 <= first.count("error") <= 90


async def test_error_rate_half_fails_some_calls(tg: TelegramEnv) -> None:
    tg.sandbox.set_fault("telegram", error_rate=0.5, seed=42)
    statuses = [(await tg.call("getMe")).status_code for _ in range(40)]
    assert {200, 500} == set(statuses)


async def test_latency_delays_answers(tg: TelegramEnv) -> None:
    tg.sandbox.set_fault("telegram", latency=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await tg.call("getMe")
    assert response.status_code == 200
    assert loop.time() - started >= 0.3
    assert tg.sandbox.recorder.requests()[-1].fault == "latency"


async def test_reset_surfaces_as_a_transport_error(tg: TelegramEnv) -> None:
    tg.sandbox.set_fault("telegram", reset_rate=1.0)
    with pytest.raises(httpx.TransportError):
        await tg.call("sendMessage", chat_id=1, text="lost")
    record = tg.sandbox.recorder.requests()[-1]
    assert (record.fault, record.status, record.ok) == ("reset", None, False)
    tg.sandbox.clear_faults()
    assert (await tg.call("getMe")).status_code == 200


async def test_hang_outlasts_the_client_timeout(tg: TelegramEnv) -> None:
    tg.sandbox.set_fault("telegram", hang_rate=1.0, hang_seconds=30)
    with pytest.raises(httpx.ReadTimeout):
        await tg.http.post(f"/bot{TOKEN}/getMe", timeout=0.3)
    await wait_until(
        lambda: any(r.fault == "hang" for r in tg.sandbox.recorder.requests()),
        message="hung request recorded after the client left",
    )


async def test_short_hang_answers_504(tg: TelegramEnv) -> None:
    tg.sandbox.set_fault("telegram", hang_rate=1.0, hang_seconds=0.2)
    response = await tg.call("getMe")
    assert response.status_code == 504
    assert response.json()["description"] == "Gateway Timeout"


async def test_outage_window_answers_503_until_it_ends(clocked: ClockedEnv) -> None:
    response = await clocked.http.post(
        "/_sandbox/faults", json={"provider": "telegram", "outage_seconds": 60}
    )
    assert response.status_code == 201
    assert (await clocked.call("getMe")).status_code == 503
    clocked.clock.advance(59)
    assert (await clocked.call("sendMessage", chat_id=1, text="x")).status_code == 503
    clocked.clock.advance(1)
    assert (await clocked.call("getMe")).status_code == 200


async def test_faults_scope_to_an_account_and_methods(tg: TelegramEnv) -> None:
    other = "555:OtherToken"
    tg.sandbox.telegram.add_bot(other, "other_bot")
    tg.sandbox.set_fault("telegram", TOKEN, error_rate=1.0, methods=["sendMessage"])
    assert (await tg.call("sendMessage", chat_id=1, text="x")).status_code == 500
    assert (await tg.call("getMe")).status_code == 200
    assert (await tg.call("sendMessage", token=other, chat_id=1, text="x")).status_code == 200


async def test_most_specific_rule_wins(tg: TelegramEnv) -> None:
    tg.sandbox.set_fault(error_rate=1.0)
    tg.sandbox.set_fault("telegram", tg.bot.id)
    assert (await tg.call("getMe")).status_code == 200
    assert (await tg.call("getMe", token="1:unknown")).status_code == 500


async def test_fault_control_api(tg: TelegramEnv) -> None:
    created = await tg.http.post(
        "/_sandbox/faults",
        json={"provider": "telegram", "account": TOKEN, "error_rate": 1, "error_status": 503},
    )
    assert created.json()["id"] == "telegram/123456789"
    assert (await tg.call("getMe")).status_code == 503
    listed = (await tg.http.get("/_sandbox/faults")).json()["faults"]
    assert listed[0]["hits"] == 1
    deleted = await tg.http.delete("/_sandbox/faults/telegram/123456789")
    assert deleted.json() == {"deleted": True}
    assert (await tg.call("getMe")).status_code == 200
    bad = await tg.http.post("/_sandbox/faults", json={"error_rate": 2})
    assert bad.status_code == 400
    unknown = await tg.http.post("/_sandbox/faults", json={"explode": True})
    assert unknown.status_code == 400
