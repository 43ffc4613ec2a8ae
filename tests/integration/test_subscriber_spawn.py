"""``subscribers.spawn`` runs each subscription on the reader it declares: a ``batch_pull``
one on the runtime's ``PullWorker`` with the subscription's concurrency, beside FastStream's
(the CRM resolver and the ingest normalizer are declared so). Real NATS."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest
from nats.aio.msg import Msg

from switchboard.ingest.normalizer import SUBSCRIPTION
from switchboard.runtime import subscribers
from switchboard.runtime.bus import Bus
from switchboard.runtime.service import Runtime
from switchboard.runtime.settings import ServiceSettings
from switchboard.runtime.testing import eventually


async def test_a_batch_pull_subscription_runs_on_the_runtimes_reader(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="spawn-test")
    await bus.provision()
    rt = Runtime(settings=ServiceSettings(nats_url=nats_url), bus=bus)
    seen: list[str] = []
    running = 0
    most = 0
    release = asyncio.Event()

    async def handle(msg: Msg) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        seen.append(msg.subject)
        await release.wait()
        running -= 1

    try:
        subscribers.spawn(rt, "consumers", {replace(SUBSCRIPTION, concurrency=2): handle})
        assert [t.get_name() for t in rt.tasks] == [SUBSCRIPTION.durable.name]
        for i in range(4):
            await bus.js.publish(f"raw.spawn-test.{i}", b"{}")

        # two at once, as declared: the other two wait for a free place
        async def two_in_hand() -> bool:
            return most == 2 and running == 2

        async def all_four() -> bool:
            return {f"raw.spawn-test.{i}" for i in range(4)} <= set(seen)

        await eventually(two_in_hand, message="two in hand")
        release.set()
        await eventually(all_four, message="all four")
        assert most == 2
    finally:
        rt.stop.set()
        release.set()
        for task in rt.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await bus.close()


async def test_a_continuous_pull_lane_is_not_spawned_here(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="spawn-test-lane")
    rt = Runtime(settings=ServiceSettings(nats_url=nats_url), bus=bus)
    try:
        with pytest.raises(ValueError, match="continuous_pull"):
            subscribers.spawn(rt, "x", {replace(SUBSCRIPTION, reader="continuous_pull"): _noop})
        assert rt.tasks == []
    finally:
        await bus.close()


async def _noop(_: Msg) -> None:
    return None
