"""The shared rate limiter on a real JetStream KV: instances racing for the same bot and
chats get distinct slots that never exceed any limit, a pause holds everyone back, leases
of slot blocks stay within their horizon, and a reply overtakes another instance's bulk.
As in the service, every slot taken is reported when its call ends (an unanswered send holds
its place in the window until its call's timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support.timing import VirtualTime, max_in_window

from switchboard.events.catalog.outbound import Priority
from switchboard.outbound.ratelimit import Limit, LimitKey, SharedLimiter
from switchboard.outbound.scheduler import Horizons, Schedulers, Ticket
from switchboard.runtime.bus import Bus


@contextlib.asynccontextmanager
async def instances(nats_url: str, **kw: Any) -> AsyncIterator[list[SharedLimiter]]:
    """Three instances' limiters on one bucket, each with its own connection."""
    buses = [await Bus.connect(nats_url, name=f"instance-{i}") for i in range(3)]
    await buses[0].provision()
    # the service default margin: exact 1/30 s spacing would let float error fit 31 in 1 s
    limiters = [SharedLimiter(await b.kv("ratelimit"), safety=0.002, **kw) for b in buses]
    try:
        yield limiters
    finally:
        for lim in limiters:
            await lim.close()
        for b in buses:
            await b.close()


@pytest.fixture
async def limiters(nats_url: str) -> AsyncIterator[list[SharedLimiter]]:
    async with instances(nats_url) as limiters:
        yield limiters


async def test_three_instances_share_the_bot_limit_at_full_rate(nats_url: str) -> None:
    """On virtual time (it moves when all three sleep): the slots are what the limiter
    decides on the bucket they race for, whatever else keeps the machine busy."""
    time = VirtualTime(1_800_000_000.0, actors=3)
    bot = LimitKey("tg.bot.1", Limit(30))

    async def instance(limiter: SharedLimiter, k: int, n: int) -> list[float]:
        out = []
        try:
            for i in range(n):
                chat = LimitKey(f"tg.bot.1.to.{k}-{i}", Limit(1))  # distinct: the bot limits
                at = await limiter.wait(bot, [chat])
                limiter.ended(bot, at)
                out.append(at)
        finally:
            time.leave()
        return out

    async with instances(nats_url, clock=time.clock, sleep=time.sleep) as limiters:
        runs = await asyncio.gather(*(instance(lim, k, 40) for k, lim in enumerate(limiters)))
    times = [t for r in runs for t in r]
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


async def test_bursts_are_allowed_up_to_the_burst_and_the_window_decides(
    limiters: list[SharedLimiter],
) -> None:
    """An account's burst lets its pace catch up, never past its window: 3 per second with
    a burst of 3 gives three within an interval (a ninth of a second apart) and the fourth a
    window (and half the margin) after the first one's answer; a burst of 1 spaces them an
    interval apart."""

    async def take(key: LimitKey, n: int) -> list[float]:
        times = []
        for i in range(n):
            at = await limiters[i % 3].wait(key)
            limiters[i % 3].ended(key, at)
            times.append(at)
        return sorted(times)

    times = await take(LimitKey("burst", Limit(3, 1, burst=3)), 6)
    assert times[2] - times[0] == pytest.approx(2 / 9, abs=1e-5)  # three, spread
    # then the window, after the first send's answer and half the 2 ms allowance
    assert times[3] >= times[0] + 1.0 + 0.001 - 1e-6
    spaced = await take(LimitKey("smooth", Limit(3, 1)), 3)
    assert min(b - a for a, b in itertools.pairwise(spaced)) >= 1 / 3 - 1e-6


async def test_leases_from_three_instances_never_overlap_and_keep_the_rate(
    nats_url: str,
) -> None:
    """Blocks of slots leased by racing instances: distinct, spaced, never past the horizon
    (on virtual time, as above)."""
    time = VirtualTime(1_800_000_000.0, actors=3)
    bot = LimitKey("tg.bot.lease", Limit(30))
    horizon = 0.3
    times: list[float] = []

    async def instance(limiter: SharedLimiter) -> None:
        try:
            while len(times) < 60:
                lease = await limiter.lease(bot, 8, horizon=horizon)
                now = limiter.clock()
                assert all(t <= now + horizon + 1e-6 for t in lease.slots)
                times.extend(lease.slots)
                limiter.note_unused(bot, lease.slots)  # answered as they come, on time
                # until half a horizon before the last slot; at least a poll's millisecond,
                # or an instance that asks again at once would hold virtual time still
                until = lease.slots[-1] if lease.slots else lease.retry_at
                await time.sleep(max(0.001, until - now - horizon / 2))
        finally:
            time.leave()

    async with instances(nats_url, clock=time.clock, sleep=time.sleep) as limiters:
        await asyncio.gather(*(instance(lim) for lim in limiters))
    ordered = sorted(times)
    assert len(set(ordered)) == len(ordered)
    assert min(b - a for a, b in itertools.pairwise(ordered)) >= 1 / 30 - 1e-6
    assert max_in_window(ordered, 1.0) <= 30
    # the shared budget is used: 60 slots at 30/s take 2 s, with the 2 ms margin
    assert ordered[59] - ordered[0] < 60 * (1 / 30 + 0.002) + 0.1


async def test_a_claim_takes_a_chat_once_and_says_when_it_is_free(
    limiters: list[SharedLimiter],
) -> None:
    chat = LimitKey("tg.bot.to.claim", Limit(1))
    at = limiters[0].clock()
    assert await limiters[0].claim(chat, at) is None
    busy = await limiters[1].claim(chat, at + 0.5)  # another instance, half a second later
    assert busy == pytest.approx(at + 1.002)
    assert await limiters[2].claim(chat, at + 1.01) is None
    # the instance that claimed first has an old view of the chat: it reads before refusing
    assert await limiters[0].claim(chat, at + 3.0) is None


async def test_a_viber_user_gets_a_conversation_at_once_and_never_a_101st_in_an_hour(
    limiters: list[SharedLimiter],
) -> None:
    """Viber refuses the 101st message to a user in an hour without a reply. Spread evenly,
    a flow's answer and its next question to a user who had just written were 36 s apart;
    now a conversation's first 10 go at once, and claimed as fast as the key allows, from
    three instances over a simulated 2 hours, no hour holds more than 100."""
    from switchboard.outbound.limits import DEFAULTS

    user = LimitKey("viber.bot.to.user", DEFAULTS["viber"]["user"])
    start = limiters[0].clock()
    assert [await limiters[i % 3].claim(user, start) for i in range(10)] == [None] * 10
    sent, at = [start] * 10, start
    while at < start + 7200:
        ready = await limiters[len(sent) % 3].claim(user, at)
        if ready is None:
            sent.append(at)
        at = ready if ready is not None else at
    assert max(sum(1 for t in sent if s <= t < s + 3600) for s in sent) <= 100
    assert len(sent) >= 190  # 10 at once, then one per 40 s (and its margin)


async def test_a_pause_moves_the_account_past_it(limiters: list[SharedLimiter]) -> None:
    bot = LimitKey("tg.bot.paused", Limit(30))
    until = await limiters[0].pause("tg.bot.paused", 0.5, bot)
    lease = await limiters[1].lease(bot, 5)
    assert lease.slots[0] >= until


async def test_a_reply_overtakes_a_bulk_backlog_held_by_another_instance(
    limiters: list[SharedLimiter],
) -> None:
    """Instance 0 holds 300 bulk sends for a bot; instance 1 gets one normal send: it is
    given a slot no later than the bulk horizon (plus a slot) from now."""
    bot = LimitKey("tg.bot.lanes", Limit(30))
    horizons = Horizons(high=1.0, normal=0.5, bulk=0.25)
    bulk = Schedulers(limiters[0], horizons).get(bot, "tg.bot.lanes")
    reply = Schedulers(limiters[1], horizons).get(bot, "tg.bot.lanes")
    tickets = [
        Ticket(Priority.BULK, LimitKey(f"tg.bot.lanes.to.{i}", Limit(1)), f"p{i}")
        for i in range(300)
    ]
    futures = [bulk.slot(t) for t in tickets]
    for f in futures:  # each bulk send is answered at its slot, on time
        f.add_done_callback(
            lambda f: f.cancelled() or limiters[0].note_late(bot, f.result(), 0.0, True)
        )
    await asyncio.wait(futures, timeout=1.5)  # bulk is flowing
    granted = [f.result() for f in futures if f.done()]
    assert granted
    assert max(granted) <= limiters[0].clock() + horizons.bulk + 0.05
    asked = limiters[1].clock()
    slot = await reply.slot(
        Ticket(Priority.NORMAL, LimitKey("tg.bot.lanes.to.reply", Limit(1)), "reply")
    )
    assert slot - asked <= horizons.bulk + 2 / 30
    for f in futures:
        f.cancel()
    await bulk.close()
    await reply.close()


async def test_a_late_send_moves_only_the_slots_a_window_on(nats_url: str) -> None:
    """A send counted 40 ms late (written by another instance, or carried by the next lease
    of the instance that sent it) moves a slot or two a window
    on from it, and nothing else: the last slot is where it would have been without it
    (holds that shifted every later slot cost each window the lateness again). Every slot
    keeps the provider's window, the late send counted at its latest."""
    clock = [2_000_000.0]
    bus = await Bus.connect(nats_url, name="t")
    await bus.provision()
    kv = await bus.kv("ratelimit")
    a, b = (SharedLimiter(kv, clock=lambda: clock[0], margin=0.01) for _ in range(2))
    allowance = a.allowance(Limit(30))

    async def run(name: str, late: float, carried: bool = False) -> list[float]:
        clock[0] = 2_000_000.0
        bot = LimitKey(name, Limit(30, burst=5))
        slots = list((await a.lease(bot, 30)).slots)
        leased_by = {s: a for s in slots}
        done = 0
        while len(slots) < 90:
            clock[0] = slots[-1]  # time goes on as the slots are used...
            for s in slots[done:]:  # ...and each send is answered: on time, but one
                if slots.index(s) == 10 and late:
                    # written by its instance, or by another one's next lease
                    (b if carried else a).note_late(bot, s, late, answered=True)
                else:
                    leased_by[s].note_late(bot, s, 0.0, answered=True)
            done = len(slots)
            await a.counted_late(bot)  # b's own answers ride on its next lease
            new = (await b.lease(bot, 10, horizon=0.5)).slots
            leased_by.update({s: b for s in new})
            slots.extend(new)
        return slots

    plain, held = await run("tg.bot.plain", 0.0), await run("tg.bot.late", 0.040)
    assert await run("tg.bot.carried", 0.040, carried=True) == held
    moved = [i for i, (x, y) in enumerate(zip(plain, held, strict=True)) if abs(x - y) > 1e-6]
    assert moved  # the window after the late send waited for it...
    # ...and only there, a window on from it (and from the slot it moved): nothing adds up
    assert all(i >= 40 and i % 30 in range(10, 15) for i in moved)
    assert held[44] >= held[10] + 0.040 + allowance / 2 + 1.0 - 1e-6
    assert held[-1] == pytest.approx(plain[-1], abs=1e-6)
    latest = [s + allowance / 2 for s in held]  # answered on time
    latest[10] = held[10] + 0.040 + allowance / 2
    for i, t in enumerate(held):
        assert sum(1 for x in latest[:i] if x > t - 1.0) < 30  # the window admits every slot
    await a.close()
    await b.close()
    await bus.close()


async def test_answers_ride_on_the_next_lease_and_open_the_next_window_earlier(
    nats_url: str,
) -> None:
    """Answers noted by an instance reach the shared window with its next lease: the send
    answered 1 ms late frees its place a window on 1 ms plus half the margin after its slot,
    for every instance; a send whose answer is not known holds its place until it is."""
    clock = [3_000_000.0]
    bus = await Bus.connect(nats_url, name="t")
    await bus.provision()
    kv = await bus.kv("ratelimit")
    a, b = (SharedLimiter(kv, clock=lambda: clock[0], margin=0.02) for _ in range(2))

    async def next_two(name: str, heard: bool) -> tuple[list[float], list[float]]:
        clock[0] = 3_000_000.0
        bot = LimitKey(name, Limit(30, burst=3))
        first = list((await a.lease(bot, 30)).slots)
        assert len(first) == 30
        if heard:
            for slot in first[:2]:
                a.note_late(bot, slot, 0.001, answered=True)
        clock[0] = first[-1]
        mine = (await a.lease(bot, 1)).slots  # a's own write carries its answers
        theirs = (await b.lease(bot, 1)).slots  # b reads them from the KV
        return first[:2], [*mine, *theirs]

    first, heard = await next_two("tg.bot.heard", heard=True)
    assert heard[0] == pytest.approx(first[0] + 1.0 + 0.001 + 0.01, abs=1e-5)
    assert heard[1] == pytest.approx(first[1] + 1.0 + 0.001 + 0.01, abs=1e-5)
    first, unheard = await next_two("tg.bot.unheard", heard=False)
    assert unheard == []  # may still be counted: none a window on from them
    bot = LimitKey("tg.bot.unheard", Limit(30, burst=3))
    clock[0] += 5.0
    assert (await b.lease(bot, 1)).slots == ()  # however long it takes...
    a.note_late(bot, first[0], 0.001, answered=True)
    await a.counted_late(bot)  # ...until the answer comes: then it is counted from it
    assert (await b.lease(bot, 1)).slots == (pytest.approx(clock[0], abs=1e-5),)
    await a.close()
    await b.close()
    await bus.close()
