"""The runtime's batch reader (``consumer.PullWorker``, the ingest normalizer's) on a real
JetStream: no batch barrier, and a stop that lets running messages finish."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from nats.aio.msg import Msg

from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import ConsumerSpec, PullWorker
from switchboard.runtime.delivery.pull import BatchPull
from switchboard.runtime.testing import eventually


@dataclass
class _Run:
    """One test's subject and durable consumer on RAW, the event that releases its held
    handlers, and the bodies its handler started and finished, in order."""

    bus: Bus
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return f"raw.pullworker.v1.{self.tag}"

    @property
    def durable(self) -> str:
        return f"pw-{self.tag}"

    def worker(
        self, handler: Callable[[Msg], Awaitable[None]], concurrency: int, batch: int = 128
    ) -> tuple[PullWorker, asyncio.Task[None]]:
        """A PullWorker on this run's consumer, running."""
        spec = ConsumerSpec(
            stream="RAW",
            durable=self.durable,
            filter_subjects=(self.subject,),
            ack_wait_s=30,
            batch=batch,
        )
        worker = PullWorker(self.bus, spec, handler, concurrency=concurrency)
        return worker, asyncio.create_task(worker.run())

    async def publish(self, body: str) -> None:
        await self.bus.publish_raw(
            self.subject, body.encode(), {"Nats-Msg-Id": f"{self.tag}-{body}"}
        )


async def test_a_slow_message_never_holds_back_the_ones_behind_it(bus: Bus) -> None:
    """Messages arriving while one is slow are handled meanwhile: with a batch barrier they
    waited for it (the normalizer's latency grew with its busiest message). The slow one
    is still acked once it finishes, and a stop waits for what runs."""
    run = _Run(bus)

    async def handler(msg: Msg) -> None:
        body = msg.data.decode()
        run.started.append(body)
        if body == "slow":
            await run.release.wait()
        run.done.append(body)

    worker, task = run.worker(handler, concurrency=4)
    try:
        await run.publish("slow")

        async def slow_started() -> bool:
            return "slow" in run.started

        await eventually(slow_started, message="the slow message is being handled")
        for i in range(3):
            await run.publish(f"fast-{i}")

        async def fast_done() -> list[str] | None:
            fast = [b for b in run.done if b.startswith("fast")]
            return fast if len(fast) == 3 else None

        await eventually(fast_done, timeout=20, message="the fast ones done while one is slow")
        assert "slow" not in run.done
        run.release.set()

        async def all_acked() -> bool:
            info = await bus.js.consumer_info("RAW", run.durable)
            return info.num_ack_pending == 0 and info.num_pending == 0 and "slow" in run.done

        await eventually(all_acked, timeout=20, message="every message acked")
    finally:
        run.release.set()
        worker.stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_stop_lets_running_messages_finish(bus: Bus) -> None:
    run = _Run(bus)

    async def handler(msg: Msg) -> None:
        run.started.append(msg.data.decode())
        await run.release.wait()
        run.done.append(msg.data.decode())

    worker, task = run.worker(handler, concurrency=2)
    await run.publish("one")

    async def running() -> bool:
        return run.started == ["one"]

    await eventually(running, message="one message running")
    worker.stop.set()
    await asyncio.sleep(0)  # the stop is seen; the running message must still finish
    assert not task.done()
    run.release.set()
    await asyncio.wait_for(task, 30)
    assert run.done == ["one"]
    info = await bus.js.consumer_info("RAW", run.durable)
    assert info.num_ack_pending == 0


async def test_a_backlog_is_pulled_a_batch_per_request_however_few_places_are_free(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker takes only as many messages as it has free places, but asks the server for
    a whole batch each time: asking for the free places alone made a pull request per message
    or two (the subscriber benchmark's worker fell from 29.2k to 18.8k messages/s)."""
    run = _Run(bus)
    for i in range(100):
        await run.publish(f"m-{i}")
    requests: list[int] = []
    real = BatchPull._request

    async def counted(self: BatchPull, batch: int, *, expires: float | None = None) -> None:
        requests.append(batch)
        await real(self, batch, expires=expires)

    monkeypatch.setattr(BatchPull, "_request", counted)

    async def handler(msg: Msg) -> None:
        run.done.append(msg.data.decode())

    worker, task = run.worker(handler, concurrency=4, batch=50)
    try:

        async def all_done() -> bool:
            return len(run.done) == 100

        await eventually(all_done, timeout=30, message="the backlog handled")
        pulled = len(requests)
    finally:
        worker.stop.set()
        await asyncio.wait_for(task, 30)
    assert sorted(run.done) == sorted(f"m-{i}" for i in range(100))
    assert pulled <= 10, requests  # 100 messages, batches of 50; a request per 4 before
