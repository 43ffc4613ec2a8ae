"""The runtime's batch reader (``consumer.PullWorker``, the ingest normalizer's) on a real
JetStream: no batch barrier, and a stop that lets running messages finish."""

from __future__ import annotations

import asyncio
import uuid

from nats.aio.msg import Msg

from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import ConsumerSpec, PullWorker
from switchboard.runtime.testing import eventually


async def test_a_slow_message_never_holds_back_the_ones_behind_it(bus: Bus) -> None:
    """Messages arriving while one is slow are handled meanwhile: with a batch barrier they
    waited for it (the normalizer's latency grew with its busiest message). The slow one
    is still acked once it finishes, and a stop waits for what runs."""
    tag = uuid.uuid4().hex[:8]
    subject = f"raw.pullworker.v1.{tag}"
    release = asyncio.Event()
    started: list[str] = []
    done: list[str] = []

    async def handler(msg: Msg) -> None:
        body = msg.data.decode()
        started.append(body)
        if body == "slow":
            await release.wait()
        done.append(body)

    spec = ConsumerSpec(
        stream="RAW", durable=f"pw-{tag}", filter_subjects=(subject,), ack_wait_s=30
    )
    worker = PullWorker(bus, spec, handler, concurrency=4)
    task = asyncio.create_task(worker.run())
    try:
        await bus.publish_raw(subject, b"slow", {"Nats-Msg-Id": f"{tag}-slow"})

        async def slow_started() -> bool:
            return "slow" in started

        await eventually(slow_started, message="the slow message is being handled")
        for i in range(3):
            await bus.publish_raw(subject, f"fast-{i}".encode(), {"Nats-Msg-Id": f"{tag}-{i}"})

        async def fast_done() -> list[str] | None:
            fast = [b for b in done if b.startswith("fast")]
            return fast if len(fast) == 3 else None

        await eventually(fast_done, timeout=20, message="the fast ones done while one is slow")
        assert "slow" not in done
        release.set()

        async def all_acked() -> bool:
            info = await bus.js.consumer_info("RAW", f"pw-{tag}")
            return info.num_ack_pending == 0 and info.num_pending == 0 and "slow" in done

        await eventually(all_acked, timeout=20, message="every message acked")
    finally:
        release.set()
        worker.stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_stop_lets_running_messages_finish(bus: Bus) -> None:
    tag = uuid.uuid4().hex[:8]
    subject = f"raw.pullworker.v1.{tag}"
    release = asyncio.Event()
    started: list[str] = []
    done: list[str] = []

    async def handler(msg: Msg) -> None:
        started.append(msg.data.decode())
        await release.wait()
        done.append(msg.data.decode())

    spec = ConsumerSpec(
        stream="RAW", durable=f"pw-{tag}", filter_subjects=(subject,), ack_wait_s=30
    )
    worker = PullWorker(bus, spec, handler, concurrency=2)
    task = asyncio.create_task(worker.run())
    await bus.publish_raw(subject, b"one", {"Nats-Msg-Id": f"{tag}-one"})

    async def running() -> bool:
        return started == ["one"]

    await eventually(running, message="one message running")
    worker.stop.set()
    await asyncio.sleep(0)  # the stop is seen; the running message must still finish
    assert not task.done()
    release.set()
    await asyncio.wait_for(task, 30)
    assert done == ["one"]
    info = await bus.js.consumer_info("RAW", f"pw-{tag}")
    assert info.num_ack_pending == 0
