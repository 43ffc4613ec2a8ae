"""Durable consumers declared once (switchboard.runtime.subscribers) and run as FastStream
pull subscribers on a real JetStream: acks, bounded retries and the DLQ through the one
failure policy, the declaration reaching the server, and a stop that finishes in-flight
work before it returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

from switchboard.events.topology import Durable
from switchboard.runtime import subscribers
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError
from switchboard.runtime.dlq import DeadLetter, list_dead_letters
from switchboard.runtime.subscribers import Subscription
from switchboard.runtime.testing import eventually

RAW = Durable(
    stream="RAW",
    name="t-subscriber",
    filter_subjects=("raw.test.>",),
    description="test consumer",
    ack_wait_s=5,
    max_ack_pending=100,
)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_url, name="test")
    await bus.provision()
    yield bus
    await bus.close()


async def _publish(bus: Bus, bodies: list[str], prefix: str = "m") -> None:
    for i, body in enumerate(bodies):
        await bus.publish_raw(
            "raw.test.v1.acct", body.encode(), {"Nats-Msg-Id": f"{prefix}{i}", "x-tag": body}
        )


async def _letters(bus: Bus, n: int) -> list[DeadLetter] | None:
    letters = await list_dead_letters(bus)
    return letters if len(letters) >= n else None


async def _pending(bus: Bus, name: str) -> bool | None:
    info = await bus.js.consumer_info("RAW", name)
    return True if info.num_ack_pending == 0 and info.num_pending == 0 else None


async def test_messages_are_acked_retried_and_dead_lettered(bus: Bus) -> None:
    seen: dict[str, int] = {}
    done: list[str] = []

    async def handler(msg: Msg) -> None:
        body = msg.data.decode()
        seen[body] = seen.get(body, 0) + 1
        if body == "poison":
            raise RuntimeError("cannot digest")
        if body == "malformed":
            raise PermanentError("not a payload")
        done.append(body)

    sub = Subscription(RAW, max_failures=3, backoff_s=(0.05,))
    stop = asyncio.Event()
    task = asyncio.create_task(subscribers.serve(bus, {sub: handler}, stop))
    await _publish(bus, ["a", "poison", "b", "malformed", "c"])
    letters = await eventually(lambda: _letters(bus, 2), message="two dead letters")
    await eventually(lambda: _pending(bus, RAW.name), message="everything settled")
    stop.set()
    await task

    assert sorted(done) == ["a", "b", "c"]
    assert seen["poison"] == 3  # its budget of content failures, then the DLQ
    assert seen["malformed"] == 1  # permanent: straight to the DLQ
    by_body = {letter.body: letter for letter in letters}
    assert by_body[b"poison"].reason == "RuntimeError: cannot digest"
    assert by_body[b"malformed"].consumer == RAW.name


async def test_the_declaration_reaches_the_server(bus: Bus) -> None:
    """The durable is created, and updated when its declaration changed (nats-py's own
    subscribe would bind to the old one as it is)."""
    await bus.js.add_consumer("RAW", ConsumerConfig(durable_name=RAW.name, ack_wait=60))

    async def handler(_: Msg) -> None:
        return None

    stop = asyncio.Event()
    stop.set()  # start, then stop at once
    await subscribers.serve(bus, {Subscription(RAW): handler}, stop)
    info = await bus.js.consumer_info("RAW", RAW.name)
    assert info.config.filter_subjects == list(RAW.filter_subjects)
    assert info.config.ack_wait == RAW.ack_wait_s
    assert info.config.max_ack_pending == RAW.max_ack_pending
    assert info.config.max_deliver == -1


async def test_a_stop_lets_the_message_in_flight_finish(bus: Bus) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def handler(msg: Msg) -> None:
        started.set()
        await release.wait()
        finished.append(msg.data.decode())

    stop = asyncio.Event()
    task = asyncio.create_task(subscribers.serve(bus, {Subscription(RAW): handler}, stop))
    await _publish(bus, ["slow"], prefix="s")
    await asyncio.wait_for(started.wait(), 30)
    stop.set()
    await asyncio.sleep(0)  # the stop has begun while the handler still works
    assert not task.done()
    release.set()
    await task
    assert finished == ["slow"]
    # An ack is a publish the server applies after it arrives: flushed, then read until the
    # server shows it (a message never acked would stay pending: nothing pulls it again).
    await bus.nc.flush()
    assert await eventually(lambda: _pending(bus, RAW.name), message="the message in flight acked")
    info = await bus.js.consumer_info("RAW", RAW.name)
    assert info.num_redelivered == 0


def test_a_durable_is_named_from_the_topology() -> None:
    d = subscribers.durable("flows", "flows-timers")
    assert d.stream == "FLOW_TIMERS"
    with pytest.raises(subscribers.UnknownDurableError, match="flows-nope"):
        subscribers.durable("flows", "flows-nope")
    with pytest.raises(subscribers.UnknownDurableError, match="nobody"):
        subscribers.durable("nobody", "x")


async def test_a_deleted_durable_is_recreated_and_reading_resumes(bus: Bus) -> None:
    """The durable removed under a running subscriber (an operator, a NACK re-sync): it is
    created again from the declaration and the messages published since are handled."""
    got: list[str] = []

    async def handler(msg: Msg) -> None:
        got.append(msg.data.decode())

    stop = asyncio.Event()
    task = asyncio.create_task(subscribers.serve(bus, {Subscription(RAW): handler}, stop))
    await _publish(bus, ["before"], prefix="d")
    await eventually(lambda: _has(got, "before"), message="handled before the deletion")
    await bus.js.delete_consumer("RAW", RAW.name)
    await _publish(bus, ["after"], prefix="e")
    await eventually(lambda: _has(got, "after"), message="handled after the deletion")
    stop.set()
    await task


async def _has(got: list[str], body: str) -> bool | None:
    return True if body in got else None
