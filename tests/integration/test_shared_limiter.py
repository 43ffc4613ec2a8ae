"""The shared rate limiter on a real JetStream KV: instances racing for the same bot and
chats get distinct slots that never exceed any limit, and a pause holds everyone back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tests.support.timing import max_in_window

from switchboard.outbound.ratelimit import Limit, LimitKey, SharedLimiter
from switchboard.runtime.bus import Bus


@pytest.fixture
async def limiters(nats_url: str) -> AsyncIterator[list[SharedLimiter]]:
    buses = [await Bus.connect(nats_url, name=f"instance-{i}") for i in range(3)]
    await buses[0].provision()
    # the service default margin: exact 1/30 s spacing would let float error fit 31 in 1 s
    yield [SharedLimiter(await b.kv("ratelimit"), safety=0.002) for b in buses]
    for b in buses:
        await b.close()


async def test_three_instances_share_the_bot_limit_at_full_rate(
    limiters: list[SharedLimiter],
) -> None:
    bot = LimitKey("tg.bot.1", Limit(30))

    async def instance(k: int, n: int) -> list[float]:
        out = []
        for i in range(n):
            chat = LimitKey(f"tg.bot.1.to.{k}-{i}", Limit(1))  # distinct chats: the bot limits
            at, _ = await limiters[k].reserve(bot, [chat])
            assert at is not None
            out.append(at)
        return out

    times = [t for r in await asyncio.gather(*(instance(k, 40) for k in range(3))) for t in r]
    assert len(set(times)) == 120  # every send got its own slot
    assert max_in_window(times, 1.0) <= 30
    gaps = [b - a for a, b in zip(sorted(times), sorted(times)[1:], strict=False)]
    assert min(gaps) >= 1 / 30 - 1e-6  # float times near 1.8e9 have ~2e-7 s resolution
    # and nothing is wasted: 120 sends at 30/s take 4 s, not more
    assert max(times) - min(times) < 120 * (1 / 30 + 0.002)


async def test_a_busy_chat_waits_without_blocking_the_bot(nats_url: str) -> None:
    clock = [1_000_000.0]
    bus = await Bus.connect(nats_url, name="t")
    await bus.provision()
    lim = SharedLimiter(await bus.kv("ratelimit"), clock=lambda: clock[0])
    bot = LimitKey("bot", Limit(30))
    busy = LimitKey("bot.to.busy", Limit(1))
    assert (await lim.reserve(bot, [busy]))[0] == clock[0]
    at, retry = await lim.reserve(bot, [busy])
    assert at is None
    assert retry == clock[0] + 1.0  # the chat is ready in a second...
    for i in range(20):  # ...while the bot keeps serving other chats meanwhile
        got, _ = await lim.reserve(bot, [LimitKey(f"bot.to.other{i}", Limit(1))])
        assert got is not None
        assert got < clock[0] + 0.7
    clock[0] = retry
    assert (await lim.reserve(bot, [busy]))[0] is not None
    await bus.close()


async def test_a_pause_holds_back_every_instance(limiters: list[SharedLimiter]) -> None:
    key = LimitKey("wa.num.1", Limit(80))
    await limiters[0].pause("wa.num.1", 5.0)
    now = limiters[1].clock()
    at, retry = await limiters[2].reserve(key, [], ["wa.num.1"])
    assert at is None
    assert retry >= now + 4.9
    assert await limiters[1].paused_until("wa.num.1") >= now + 4.9
    # a shorter pause does not shorten a longer one
    await limiters[1].pause("wa.num.1", 1.0)
    assert await limiters[0].paused_until("wa.num.1") >= now + 4.9


async def test_bursts_are_allowed_up_to_the_burst(limiters: list[SharedLimiter]) -> None:
    key = LimitKey("burst", Limit(1, 1, burst=3))
    times = [(await limiters[i % 3].reserve(key))[0] or 0.0 for i in range(6)]
    now = limiters[0].clock()
    assert sum(t <= now + 0.05 for t in times) == 3  # three at once, then one per second
    assert sorted(times)[3] >= min(times) + 1.0 - 1e-6
