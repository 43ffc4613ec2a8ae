"""Viber's 100 messages per user per hour without a reply: the 101st gets status 12."""

from __future__ import annotations

import asyncio

from .messaging_support import viber_env

USER = "Ge24lrt0/Rq3wGFGBEqG0g=="
OTHER = "7pYYXZTtNTwCxe1Wpm/fPQ=="


async def test_the_101st_message_without_a_reply_gets_status_12() -> None:
    async with viber_env(manual_clock=True) as env:
        assert env.clock is not None
        answers = await asyncio.gather(*(env.send_text(USER, f"#{i}") for i in range(100)))
        assert all(a["status"] == 0 for a in answers)
        refused = await env.send_text(USER, "#101")
        assert refused == {"status": 12, "status_message": "tooManyRequests"}
        assert (await env.send_text(OTHER))["status"] == 0  # per user
        record = env.sandbox.recorder.requests(provider="viber", chat=USER, ok=False)[-1]
        assert (record.error_code, record.account) == (12, "testshop")
        env.clock.advance(1800)
        assert (await env.send_text(USER))["status"] == 12  # still within the hour
        await env.sandbox.viber.inject_event(env.bot, USER, "message")
        assert (await env.send_text(USER, "thanks for the reply"))["status"] == 0


async def test_the_count_expires_after_an_hour() -> None:
    async with viber_env(manual_clock=True) as env:
        assert env.clock is not None
        env.sandbox.viber.config.limits.update({"unreplied": {"limit": 3, "window": 3600}})
        assert [(await env.send_text(USER))["status"] for _ in range(4)] == [0, 0, 0, 12]
        env.clock.advance(3600)
        assert (await env.send_text(USER))["status"] == 0


async def test_limits_over_the_control_api() -> None:
    async with viber_env(manual_clock=True) as env:
        changed = await env.http.put(
            "/_sandbox/viber/limits", json={"unreplied": {"limit": 2, "window": 60}}
        )
        assert changed.json()["unreplied"] == {"kind": "window", "limit": 2, "window": 60.0}
        assert [(await env.send_text(USER))["status"] for _ in range(3)] == [0, 0, 12]
        reply = await env.http.post(
            "/_sandbox/viber/bots/testshop/events",
            json={"user_id": USER, "event": "message", "message": {"type": "text", "text": "ok"}},
        )
        assert reply.status_code == 202
        assert (await env.send_text(USER))["status"] == 0
        await env.http.put("/_sandbox/viber/limits", json={"enabled": False})
        assert all([(await env.send_text(OTHER))["status"] == 0 for _ in range(5)])
