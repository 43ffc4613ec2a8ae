"""WhatsApp throughput (80/s per number, 130429) and pair rate (1 per 6 s, 131056) limits."""

from __future__ import annotations

import asyncio

import httpx

from .messaging_support import PHONE_ID, TEMPLATE, WaEnv, whatsapp_env


def recipients(count: int, start: int = 0) -> list[str]:
    return [f"4915{start + i:09d}" for i in range(count)]


async def templates_to(env: WaEnv, users: list[str]) -> list[httpx.Response]:
    return list(await asyncio.gather(*(env.send(u, "template", **TEMPLATE) for u in users)))


async def test_a_burst_of_100_gets_130429_after_80() -> None:
    async with whatsapp_env(manual_clock=True) as env:
        assert env.clock is not None
        responses = await templates_to(env, recipients(100))
        statuses = [r.status_code for r in responses]
        assert (statuses.count(200), statuses.count(429)) == (80, 20)
        for response in responses:
            if response.status_code == 429:
                error = response.json()["error"]
                assert (error["code"], error["message"]) == (130429, "(#130429) Rate limit hit")
                assert error["error_data"]["details"] == (
                    "Cloud API message throughput has been reached."
                )
        refused = env.sandbox.recorder.requests(provider="whatsapp", status=429)
        assert len(refused) == 20
        assert all(r.error_code == 130429 for r in refused)
        env.clock.advance(1.0)
        again = await templates_to(env, recipients(5, start=500))
        assert [r.status_code for r in again] == [200] * 5


async def test_accepted_rate_never_exceeds_80_per_second_on_a_real_clock() -> None:
    async with whatsapp_env() as env:
        responses = await templates_to(env, recipients(130))
        accepted = sorted(
            r.mono for r in env.sandbox.recorder.requests(provider="whatsapp", ok=True)
        )
        assert len(accepted) >= 80
        for i, start in enumerate(accepted):
            assert len([t for t in accepted[i:] if t < start + 1.0]) <= 80
        codes = {r.json()["error"]["code"] for r in responses if r.status_code != 200}
        assert codes <= {130429}


async def test_throttle_status_can_follow_metas_table_instead() -> None:
    async with whatsapp_env(manual_clock=True) as env:
        env.sandbox.whatsapp.config.throttle_status = 400
        env.sandbox.whatsapp.config.limits.update({"throughput": {"limit": 2, "window": 1}})
        responses = await templates_to(env, recipients(3))
        assert sorted(r.status_code for r in responses) == [200, 200, 400]


async def test_pair_limit_refuses_a_second_message_to_the_same_user_within_6_s() -> None:
    async with whatsapp_env(manual_clock=True) as env:
        assert env.clock is not None
        user = "351912345678"
        assert (await env.send(user, "template", **TEMPLATE)).status_code == 200
        again = await env.send(user, "template", **TEMPLATE)
        assert again.status_code == 400
        error = again.json()["error"]
        assert error["code"] == 131056
        assert (
            error["message"] == "(#131056) (Business Account, Consumer Account) pair rate limit hit"
        )
        other = await env.send("351912345679", "template", **TEMPLATE)
        assert other.status_code == 200  # other users are not affected
        env.clock.advance(5.0)
        assert (await env.send(user, "template", **TEMPLATE)).status_code == 400
        env.clock.advance(1.0)
        assert (await env.send(user, "template", **TEMPLATE)).status_code == 200
        record = env.sandbox.recorder.requests(provider="whatsapp", status=400)[0]
        assert (record.chat, record.error_code, record.retry_after) == (user, 131056, 6)


async def test_limits_are_configurable_over_the_control_api() -> None:
    async with whatsapp_env(manual_clock=True) as env:
        changed = await env.http.put(
            "/_sandbox/whatsapp/limits",
            json={"throughput": {"limit": 3, "window": 1}, "pair": {"rate": 1, "burst": 2}},
        )
        assert changed.json()["throughput"] == {"kind": "window", "limit": 3, "window": 1.0}
        assert changed.json()["pair"] == {"kind": "bucket", "rate": 1.0, "burst": 2}
        pair = [
            (await env.send("33612345678", "template", **TEMPLATE)).status_code for _ in range(3)
        ]
        assert pair == [200, 200, 400]
        burst = await templates_to(env, recipients(3, start=900))
        assert [r.status_code for r in burst].count(429) == 2
        off = await env.http.put("/_sandbox/whatsapp/limits", json={"enabled": False})
        assert off.json()["enabled"] is False
        assert all(r.status_code == 200 for r in await templates_to(env, recipients(10, 700)))
        state = (await env.http.get("/_sandbox/state")).json()["whatsapp"]
        assert state["numbers"][0]["phone_number_id"] == PHONE_ID
