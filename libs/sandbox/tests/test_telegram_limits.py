"""Telegram flood limits: per bot 30/s, per private chat ~1/s burst 3, per group 20/min."""

from __future__ import annotations

import asyncio

import httpx

from .conftest import ClockedEnv, TelegramEnv


def too_many(retry_after: int) -> dict[str, object]:
    return {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }


async def burst(env: TelegramEnv, chats: list[int]) -> list[httpx.Response]:
    return list(
        await asyncio.gather(
            *(env.call("sendMessage", chat_id=chat, text=f"hi {chat}") for chat in chats)
        )
    )


async def test_burst_of_40_to_one_bot_gets_429_after_30(clocked: ClockedEnv) -> None:
    responses = await burst(clocked, list(range(1000, 1040)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 30
    assert statuses.count(429) == 10
    for response in responses:
        if response.status_code == 429:
            assert response.json() == too_many(1)
            assert response.headers["retry-after"] == "1"
    refused = clocked.sandbox.recorder.requests(status=429)
    assert len(refused) == 10
    assert all(r.retry_after == 1 for r in refused)


async def test_429_persists_until_retry_after_has_passed(clocked: ClockedEnv) -> None:
    await burst(clocked, list(range(2000, 2031)))
    clocked.clock.advance(0.5)
    still = await clocked.call("sendMessage", chat_id=3000, text="again")
    assert still.json() == too_many(1)
    clocked.clock.advance(0.5)
    ok = await clocked.call("sendMessage", chat_id=3000, text="again")
    assert ok.status_code == 200


async def test_refused_requests_are_not_counted(clocked: ClockedEnv) -> None:
    clocked.sandbox.telegram.config.limits.update({"bot": {"limit": 2, "window": 1}})
    assert [r.status_code for r in await burst(clocked, [1, 2, 3, 4, 5, 6])].count(200) == 2
    clocked.clock.advance(1.0)
    # had the four refusals been counted, the window would still be full
    assert [r.status_code for r in await burst(clocked, [7, 8])] == [200, 200]


async def test_accepted_rate_never_exceeds_30_per_second_on_a_real_clock(tg: TelegramEnv) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    responses = await burst(tg, list(range(5000, 5040)))
    elapsed = loop.time() - started
    accepted = sorted(r.mono for r in tg.sandbox.recorder.requests(method="sendMessage", ok=True))
    for i, start in enumerate(accepted):
        assert len([t for t in accepted[i:] if t < start + 1.0]) <= 30
    refused = [r for r in responses if r.status_code == 429]
    for response in refused:
        body = response.json()
        assert body["parameters"]["retry_after"] >= 1
        assert (
            body["description"]
            == f"Too Many Requests: retry after {body['parameters']['retry_after']}"
        )
        assert response.headers["retry-after"] == str(body["parameters"]["retry_after"])
    if elapsed < 1.0:  # the whole burst landed inside one second
        assert len(refused) >= 10


async def test_private_chat_allows_a_burst_of_3_then_about_1_per_second(
    clocked: ClockedEnv,
) -> None:
    statuses = [
        (await clocked.call("sendMessage", chat_id=77, text=str(i))).status_code for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    other = await clocked.call("sendMessage", chat_id=78, text="other chat")
    assert other.status_code == 200
    clocked.clock.advance(1.0)
    assert (await clocked.call("sendMessage", chat_id=77, text="later")).status_code == 200
    assert (await clocked.call("sendMessage", chat_id=77, text="too soon")).status_code == 429


async def test_group_allows_20_per_minute(clocked: ClockedEnv) -> None:
    group = -1001234567890
    statuses = [
        (await clocked.call("sendMessage", chat_id=group, text=str(i))).status_code
        for i in range(21)
    ]
    assert statuses == [200] * 20 + [429]
    last = await clocked.call("sendMessage", chat_id=group, text="x")
    assert last.json() == too_many(60)
    clocked.clock.advance(30)
    assert (await clocked.call("sendMessage", chat_id=group, text="x")).json() == too_many(30)
    clocked.clock.advance(30)
    assert (await clocked.call("sendMessage", chat_id=group, text="x")).status_code == 200


async def test_limits_are_configurable_over_the_control_api(clocked: ClockedEnv) -> None:
    response = await clocked.http.put(
        "/_sandbox/telegram/limits", json={"bot": {"limit": 5, "window": 1}, "private_chat": None}
    )
    assert response.json()["bot"] == {"kind": "window", "limit": 5, "window": 1.0}
    assert response.json()["private_chat"] is None
    statuses = [
        (await clocked.call("sendMessage", chat_id=9, text=str(i))).status_code for i in range(6)
    ]
    assert statuses == [200] * 5 + [429]
    await clocked.http.put("/_sandbox/telegram/limits", json={"enabled": False})
    statuses = [
        (await clocked.call("sendMessage", chat_id=9, text=str(i))).status_code for i in range(10)
    ]
    assert set(statuses) == {200}


async def test_paid_broadcast_lifts_the_bot_limit(clocked: ClockedEnv) -> None:
    responses = await asyncio.gather(
        *(
            clocked.call("sendMessage", chat_id=chat, text="promo", allow_paid_broadcast=True)
            for chat in range(100, 160)
        )
    )
    assert {r.status_code for r in responses} == {200}


async def test_media_sends_share_the_limits(clocked: ClockedEnv) -> None:
    for i in range(3):
        sent = await clocked.call(
            "sendPhoto", chat_id=55, photo="https://x.test/p.jpg", caption=str(i)
        )
        assert sent.status_code == 200
    refused = await clocked.call("sendDocument", chat_id=55, document="https://x.test/d.pdf")
    assert refused.json() == too_many(1)


async def test_flood_penalty_is_configurable_and_lengthens_repeat_waits(
    clocked: ClockedEnv,
) -> None:
    response = await clocked.http.put(
        "/_sandbox/telegram/limits",
        json={"bot": {"limit": 1, "window": 1}, "penalty": {"step": 3, "window": 60}},
    )
    assert response.json()["penalty"] == {"step": 3.0, "window": 60.0, "cap": 60.0}
    assert (await clocked.call("sendMessage", chat_id=9, text="a")).status_code == 200

    async def told() -> int:
        sent = await clocked.call("sendMessage", chat_id=9, text="b")
        assert sent.status_code == 429
        return int(sent.json()["parameters"]["retry_after"])

    assert [await told() for _ in range(3)] == [1, 1, 1]  # blocked: the time left
    clocked.clock.advance(1)
    assert (await clocked.call("sendMessage", chat_id=10, text="c")).status_code == 200
    assert await told() == 1 + 3 * 3  # the next block: 3 s more per strike so far
    bad = await clocked.http.put("/_sandbox/telegram/limits", json={"penalty": {"nope": 1}})
    assert bad.status_code == 400
    await clocked.http.put("/_sandbox/telegram/limits", json={"penalty": None})
    assert (await clocked.http.get("/_sandbox/telegram/limits")).json()["penalty"] is None
