"""runtime.periodic: a round that raises does not end the loop, and a stop ends the wait
between rounds at once (the tests would hang, not fail, on a wait that ignores the stop)."""

from __future__ import annotations

import asyncio

from switchboard.runtime.periodic import every, pause


async def test_a_failed_round_is_logged_and_the_next_round_runs() -> None:
    stop = asyncio.Event()
    rounds: list[int] = []

    async def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("the bus is away")
        stop.set()

    await every(0, stop, work, "round failed")
    assert rounds == [0, 1]


async def test_a_stop_ends_the_wait_between_rounds() -> None:
    stop, ran = asyncio.Event(), asyncio.Event()
    rounds: list[int] = []

    async def work() -> None:
        rounds.append(1)
        ran.set()

    loop = asyncio.create_task(every(3600, stop, work, "round failed"))
    await ran.wait()
    stop.set()
    await loop  # long before the hour: the stop ends the pause
    assert rounds == [1]
    assert await pause(stop, 3600) is True


async def test_a_pause_without_a_stop_lasts_its_time() -> None:
    assert await pause(asyncio.Event(), 0) is False
