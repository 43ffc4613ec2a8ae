"""The server's clock as instances read it (``runtime.servertime``), on a real NATS server:
instances whose own clocks disagree by an hour still agree on the time, and share a rate
limit as if they had one clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from tests.support.timing import max_in_window

from switchboard.events.streams import CLOCK
from switchboard.outbound.ratelimit import Limit, LimitKey, SharedLimiter
from switchboard.runtime.bus import Bus
from switchboard.runtime.servertime import Estimate, ServerClock, ServerTimeError, best_of

HOUR = 3600.0


def skewed(by: float) -> Callable[[], float]:
    """A local clock ``by`` seconds away from this process's monotonic clock."""
    return lambda: time.monotonic() + by


@pytest.fixture
async def buses(nats_url: str) -> AsyncIterator[list[Bus]]:
    out = [await Bus.connect(nats_url, name=f"instance-{i}") for i in range(2)]
    await out[0].provision()
    yield out
    for b in out:
        await b.close()


def test_the_shortest_round_trip_decides_and_bounds_the_error() -> None:
    # (sent, stamped by the server, acked): the second probe waited long for its ack
    est = best_of([(10.0, 1000.010, 10.02), (20.0, 1000.5, 21.0), (30.0, 1020.02, 30.04)])
    assert (est.at, est.local, est.error) == pytest.approx((1000.010, 10.01, 0.01))
    assert est.project(11.01) == pytest.approx(1001.010)
    assert est.agrees(Estimate(1020.02, 30.02, 0.02))  # the third probe, 10 ms off at most
    assert not est.agrees(Estimate(1020.5, 30.02, 0.02))  # the server's clock moved 0.5 s


async def test_now_is_refused_before_the_first_sync(buses: list[Bus]) -> None:
    with pytest.raises(ServerTimeError):
        ServerClock(buses[0].js, CLOCK.name).now()


async def test_instances_an_hour_apart_read_the_same_server_time(buses: list[Bus]) -> None:
    behind = ServerClock(buses[0].js, CLOCK.name, local=skewed(-HOUR))
    ahead = ServerClock(buses[1].js, CLOCK.name, local=skewed(+HOUR))
    a, b = await behind.sync(), await ahead.sync()
    # the server runs on this machine: its time is this machine's wall time
    assert abs(behind.now() - time.time()) < 1.0
    # one moment, read by both: apart by no more than both errors (and the two reads)
    first, second, third = behind.now(), ahead.now(), behind.now()
    assert first - b.error - a.error <= second <= third + a.error + b.error


async def test_now_never_goes_back_across_syncs(buses: list[Bus]) -> None:
    clock = ServerClock(buses[0].js, CLOCK.name)
    await clock.sync()
    seen = [clock.now()]
    for _ in range(5):
        await clock.sync()
        seen.append(clock.now())
    assert seen == sorted(seen)


async def test_a_moved_server_clock_is_followed(buses: list[Bus]) -> None:
    clock = ServerClock(buses[0].js, CLOCK.name)
    real = await clock.sync()
    # as if the estimate in use came from a leader whose clock was a minute behind
    clock.estimate = Estimate(real.at - 60.0, real.local, real.error)
    await clock.sync()
    assert abs(clock.now() - time.time()) < 1.0


async def test_limiters_on_clocks_an_hour_apart_keep_one_limit(buses: list[Bus]) -> None:
    """Slots are server times: an instance whose own clock is an hour ahead neither sends in
    the slots another one holds nor waits an hour for them. Each send is placed when this
    machine's wall clock would see it, which is what the provider counts."""
    clocks = [
        ServerClock(buses[0].js, CLOCK.name, local=skewed(-HOUR)),
        ServerClock(buses[1].js, CLOCK.name, local=skewed(+HOUR)),
    ]
    for c in clocks:
        await c.sync()
    limiters = [
        # 10 ms of safety per slot: the two estimates of the server's time may differ by a
        # few ms on a loaded machine, which must not read as 31 sends in a second
        SharedLimiter(await b.kv("ratelimit"), clock=c.now, safety=0.01)
        for b, c in zip(buses, clocks, strict=True)
    ]
    bot = LimitKey("tg.bot.clock", Limit(30))

    async def instance(k: int) -> list[float]:
        lim, out = limiters[k], []
        for i in range(30):
            at = await lim.wait(bot, [LimitKey(f"tg.bot.clock.to.{k}-{i}", Limit(1))])
            lim.ended(bot, at)  # answered, as the service says of every call
            out.append(at - (lim.clock() - time.time()))  # when it is sent, really
        return out

    sends = [t for r in await asyncio.gather(instance(0), instance(1)) for t in r]
    assert max_in_window(sends, 1.0) <= 30
    # nobody waits for the other's hour (60 slots take 2.6 s; slow round trips stretch that,
    # an hour's wait would not fit 600 s)
    assert max(sends) - min(sends) < 600
    for lim in limiters:
        await lim.close()


async def test_start_up_waits_out_a_stream_that_cannot_answer_yet() -> None:
    """A node of the cluster down, the bucket's stream electing a leader: probes fail for a
    while; start-up asks again instead of failing the service (the chaos test found it)."""
    from nats.js.errors import NoStreamResponseError

    class Flaky(ServerClock):
        def __init__(self) -> None:
            super().__init__(None, CLOCK.name, probes=3)  # type: ignore[arg-type]
            self.failures = 7  # two whole syncs and one probe of the third

        async def _probe(self) -> tuple[float, float, float]:
            if self.failures:
                self.failures -= 1
                raise NoStreamResponseError
            return (10.0, 1000.0, 10.002)

    clock = Flaky()
    est = await clock.first_sync(within_s=30)
    assert (est.at, est.error) == (1000.0, pytest.approx(0.001))
    clock.failures = 3
    with pytest.raises(ServerTimeError):
        await clock.sync()  # no probe answered: the sync fails, the estimate stays
    assert clock.estimate == est
