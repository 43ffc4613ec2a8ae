"""The one JetStream pull implementation (``runtime.delivery.pull``) on a real server: batch
fetches of a durable, the error a vanished consumer gives, the buffered messages a stop hands
back, and the continuous pull's capacity."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import (
    BatchPull,
    ConsumerError,
    ContinuousPull,
    next_subject,
    request_body,
    stream_seq,
)
from switchboard.runtime.testing import eventually


async def _publish(bus: Bus, subject: str, n: int) -> None:
    for i in range(n):
        await bus.publish_raw(subject, str(i).encode(), {"Nats-Msg-Id": f"{subject}-{i}"})


def _durable(subject: str, name: str) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=name, ack_policy=AckPolicy.EXPLICIT, ack_wait=60, filter_subject=subject
    )


async def test_batch_pull_reads_a_backlog_in_order_then_times_out(bus: Bus) -> None:
    tag = uuid.uuid4().hex[:8]
    subject = f"raw.pulltest.v1.{tag}"
    await _publish(bus, subject, 7)
    pull = await BatchPull(bus, "RAW", _durable(subject, f"pt-{tag}")).start()
    got: list[Msg] = []
    try:
        while len(got) < 7:
            batch = await pull.fetch(3, timeout=5.0)
            assert 1 <= len(batch) <= 3
            got += batch
            for msg in batch:
                await msg.ack()
        with pytest.raises(TimeoutError):
            await pull.fetch(3, timeout=0.2)
    finally:
        await pull.close()
    assert [m.data for m in got] == [str(i).encode() for i in range(7)]
    # A durable outlives its reader.
    assert (await bus.js.consumer_info("RAW", f"pt-{tag}")).name == f"pt-{tag}"


async def test_a_deleted_consumer_is_a_consumer_error(bus: Bus) -> None:
    tag = uuid.uuid4().hex[:8]
    pull = await BatchPull(bus, "RAW", _durable(f"raw.pulltest.v1.{tag}", f"pt-{tag}")).start()
    try:
        await bus.js.delete_consumer("RAW", f"pt-{tag}")
        with pytest.raises(ConsumerError):
            await pull.fetch(3, timeout=5.0)
    finally:
        await pull.close()


async def test_close_hands_buffered_messages_back_at_once(bus: Bus) -> None:
    tag = uuid.uuid4().hex[:8]
    subject = f"raw.pulltest.v1.{tag}"
    await _publish(bus, subject, 4)
    config = _durable(subject, f"pt-{tag}")
    pull = await BatchPull(bus, "RAW", config).start()
    first: list[Msg] = []
    while len(first) < 4:
        first += await pull.fetch(4 - len(first), timeout=5.0)
    pull.buffer[:0] = first[1:]  # as if these had arrived but were never taken
    await first[0].ack()
    await pull.close(nak_buffered=True)
    again = await BatchPull(bus, "RAW", config).start()
    try:
        back: list[Msg] = []
        while len(back) < 3:  # within the 60 s ack wait: only a nak brings them back
            back += await again.fetch(3, timeout=5.0)
        assert [m.data for m in back] == [b"1", b"2", b"3"]
    finally:
        await again.close()


async def test_continuous_pull_holds_at_most_its_capacity(bus: Bus) -> None:
    tag = uuid.uuid4().hex[:8]
    subject = f"raw.pulltest.v1.{tag}"
    delivered: list[Msg] = []
    stop = asyncio.Event()
    pull = ContinuousPull(
        bus, "RAW", _durable(subject, f"pt-{tag}"), delivered.append, capacity=2, stop=stop
    )
    task = asyncio.create_task(pull.run())
    try:
        await _publish(bus, subject, 5)
        await eventually(lambda: _at_least(delivered, 2), message="two delivered")
        info = await bus.js.consumer_info("RAW", f"pt-{tag}")
        assert len(delivered) == 2
        assert pull.held == 2
        assert info.num_ack_pending == 2
        for msg in list(delivered):
            await msg.ack()
            pull.settled()
        await eventually(lambda: _at_least(delivered, 4), message="two more delivered")
        assert [m.data for m in delivered[:4]] == [b"0", b"1", b"2", b"3"]
    finally:
        stop.set()
        await task


async def _at_least(msgs: list[Msg], n: int) -> bool:
    return len(msgs) >= n


async def test_a_delivery_lost_in_transit_is_a_consumer_error_not_a_gap(bus: Bus) -> None:
    """Without acks the server never sends a lost message again: a reader that went on
    would skip it for good (a projection counting one message less, found by the chaos
    test). A delivery the reader never got makes its next fetch a ConsumerError, and a
    reader resubscribing after what it has reads the lost message after all."""
    tag = uuid.uuid4().hex[:8]
    subject = f"raw.pulltest.v1.{tag}"
    await _publish(bus, subject, 3)
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, filter_subject=subject, mem_storage=True)
    pull = await BatchPull(bus, "RAW", config).start()
    try:
        got = await pull.fetch(1, timeout=5.0)
        assert [m.data for m in got] == [b"0"]
        # The second message goes to an inbox nobody reads: delivered, and lost.
        void = await bus.nc.subscribe(bus.nc.new_inbox())
        await bus.nc.publish(next_subject("RAW", pull.name), request_body(1), reply=void.subject)
        assert (await void.next_msg(timeout=5.0)).data == b"1"
        await void.unsubscribe()
        with pytest.raises(ConsumerError, match="lost in transit"):
            await pull.fetch(1, timeout=5.0)
    finally:
        await pull.close()
    resumed = dataclasses.replace(
        config,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=stream_seq(got[-1]) + 1,
    )
    again = await BatchPull(bus, "RAW", resumed).start()
    try:
        rest: list[Msg] = []
        while len(rest) < 2:
            rest += await again.fetch(2, timeout=5.0)
        assert [m.data for m in rest] == [b"1", b"2"]
    finally:
        await again.close()
