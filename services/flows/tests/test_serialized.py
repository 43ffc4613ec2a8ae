"""One conversation's inputs are handled one at a time, in arrival order, within an
instance: a third input arriving while the second waits for the first queues behind it."""

from __future__ import annotations

import asyncio

from switchboard.flows.runner import Runner


async def test_inputs_of_one_conversation_never_overlap_and_keep_their_order() -> None:
    runner = Runner(bus=None, library=None, effects=None)  # type: ignore[arg-type]
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    order: list[str] = []
    release = {name: asyncio.Event() for name in "ABC"}

    async def handle(name: str) -> None:
        async with runner._serialized("session"):
            inside.append(name)
            order.append(name)
            if len(inside) > 1:
                overlaps.append(tuple(inside))
            await release[name].wait()
            inside.remove(name)

    a = asyncio.create_task(handle("A"))
    await asyncio.sleep(0)
    b = asyncio.create_task(handle("B"))
    await asyncio.sleep(0)  # B waits for A
    release["A"].set()
    await a  # A is done; B is woken but has not run yet
    c = asyncio.create_task(handle("C"))  # arrives now
    for _ in range(5):
        await asyncio.sleep(0)
    release["B"].set()
    release["C"].set()
    await asyncio.gather(b, c)
    assert overlaps == []
    assert order == ["A", "B", "C"]
    assert runner._locks == {}  # nothing left behind
