"""The consumer port's one contract suite, run on a real JetStream against every reader a
durable may be declared with (``tests/support/consumers.READERS``: FastStream's pull
subscriber, the default, and the runtime's PullWorker on BatchPull, a hot path's): acks,
bounded retries and the DLQ through the one failure policy, redrive, outages of our own
infrastructure that never use up a message's budget, the declaration reaching the server, a
deleted durable created again, and a stop that finishes in-flight work before it returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, ConsumerInfo, KeyValueConfig
from nats.js.errors import BucketNotFoundError, NoKeysError, NotFoundError
from tests.support.consumers import READERS, Served

from switchboard.events.streams import STREAMS
from switchboard.events.topology import Durable
from switchboard.runtime import subscribers
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import Handler, PermanentError
from switchboard.runtime.db import create_pool
from switchboard.runtime.dlq import DeadLetter, list_dead_letters, redrive
from switchboard.runtime.embedded import EmbeddedPostgres
from switchboard.runtime.subscribers import Reader, Subscription
from switchboard.runtime.testing import eventually

RAW = Durable(
    stream="RAW",
    name="t-consumer",
    filter_subjects=("raw.test.>",),
    description="test consumer",
    ack_wait_s=5,
    max_ack_pending=100,
)

# Outages. The old policy gave a message 5 deliveries over ~25 s whatever failed, so an
# outage longer than that moved accepted messages to the DLQ. Timings are shrunk through
# the subscription: the content budget here is 2 failures 50 ms apart, and each outage lasts
# until every message has failed many times that.
OUTAGE = Subscription(
    RAW, max_failures=2, backoff_s=(0.05,), infra_backoff_s=0.02, infra_backoff_cap_s=0.1
)
OUTAGE_FAILURES = 10  # per message, five times its content budget
OUTAGE_BODIES = ["m0", "m1", "m2"]

Serve = Callable[[Subscription, Handler], Served]


@pytest.fixture(params=READERS)
async def serve(request: pytest.FixtureRequest, bus: Bus) -> AsyncIterator[Serve]:
    """Serves a subscription through the reader under test; stops what a test left running."""
    reader: Reader = request.param
    served: list[Served] = []

    def start(sub: Subscription, handler: Handler) -> Served:
        served.append(Served(bus, reader, sub, handler))
        return served[-1]

    yield start
    for running in served:
        if not running.task.done():
            await running.close()


async def _publish(bus: Bus, bodies: list[str], prefix: str = "m") -> None:
    for i, body in enumerate(bodies):
        await bus.publish_raw(
            "raw.test.v1.acct", body.encode(), {"Nats-Msg-Id": f"{prefix}{i}", "x-tag": body}
        )


async def _letters(bus: Bus, n: int) -> list[DeadLetter] | None:
    letters = await list_dead_letters(bus)
    return letters if len(letters) >= n else None


async def _info(bus: Bus, name: str) -> ConsumerInfo | None:
    """The durable's state, or None before the reader under test has created it (it does so
    in its own task: a probe right after ``serve`` may come first on a loaded machine)."""
    try:
        return await bus.js.consumer_info("RAW", name)
    except NotFoundError:
        return None


async def _settled(bus: Bus, name: str) -> bool | None:
    info = await _info(bus, name)
    return True if info and info.num_ack_pending == 0 and info.num_pending == 0 else None


async def _has(got: list[str], body: str) -> bool | None:
    return True if body in got else None


async def test_messages_are_acked_retried_dead_lettered_and_redriven(
    bus: Bus, serve: Serve
) -> None:
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

    served = serve(Subscription(RAW, max_failures=3, backoff_s=(0.05,)), handler)
    await _publish(bus, ["a", "poison", "b", "malformed", "c"])
    letters = await eventually(lambda: _letters(bus, 2), message="two dead letters")
    await eventually(lambda: _settled(bus, RAW.name), message="everything settled")
    await served.close()

    assert sorted(done) == ["a", "b", "c"]
    assert seen["poison"] == 3  # its budget of content failures, then the DLQ
    assert seen["malformed"] == 1  # permanent: straight to the DLQ
    by_body = {letter.body: letter for letter in letters}
    assert by_body[b"poison"].reason == "RuntimeError: cannot digest"
    assert by_body[b"poison"].headers["x-tag"] == "poison"
    assert by_body[b"poison"].subject == "raw.test.v1.acct"
    assert by_body[b"malformed"].reason == "not a payload"
    assert by_body[b"malformed"].consumer == RAW.name

    # redrive puts it back on its subject (with a fresh id) and removes it from the DLQ
    before = (await bus.js.stream_info("RAW")).state.messages
    await redrive(bus, by_body[b"malformed"])
    assert (await bus.js.stream_info("RAW")).state.messages == before + 1
    assert len(await list_dead_letters(bus)) == 1


async def test_the_declaration_reaches_the_server(bus: Bus, serve: Serve) -> None:
    """The durable is created, and updated when its declaration changed (nats-py's own
    subscribe would bind to the old one as it is)."""
    await bus.js.add_consumer("RAW", ConsumerConfig(durable_name=RAW.name, ack_wait=60))

    async def handler(_: Msg) -> None:
        return None

    async def declared() -> ConsumerConfig | None:
        info = await _info(bus, RAW.name)
        return info.config if info and info.config.ack_wait == RAW.ack_wait_s else None

    served = serve(Subscription(RAW), handler)
    config = await eventually(declared, message="the declaration on the server")
    await served.close()
    assert config.filter_subjects == list(RAW.filter_subjects)
    assert config.max_ack_pending == RAW.max_ack_pending
    assert config.max_deliver == -1


async def test_a_stop_lets_the_message_in_flight_finish(bus: Bus, serve: Serve) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def handler(msg: Msg) -> None:
        started.set()
        await release.wait()
        finished.append(msg.data.decode())

    served = serve(Subscription(RAW), handler)
    await _publish(bus, ["slow"], prefix="s")
    await asyncio.wait_for(started.wait(), 30)
    served.stop.set()
    await asyncio.sleep(0)  # the stop has begun while the handler still works
    assert not served.task.done()
    release.set()
    await served.task
    assert finished == ["slow"]
    # An ack is a publish the server applies after it arrives: flushed, then read until the
    # server shows it (a message never acked would stay pending: nothing pulls it again).
    await bus.nc.flush()
    assert await eventually(lambda: _settled(bus, RAW.name), message="the message in flight acked")
    info = await bus.js.consumer_info("RAW", RAW.name)
    assert info.num_redelivered == 0


async def test_a_deleted_durable_is_recreated_and_reading_resumes(bus: Bus, serve: Serve) -> None:
    """The durable removed under a running reader (an operator, a NACK re-sync): it is
    created again from the declaration and the messages published since are handled."""
    got: list[str] = []

    async def handler(msg: Msg) -> None:
        got.append(msg.data.decode())

    served = serve(Subscription(RAW), handler)
    await _publish(bus, ["before"], prefix="d")
    await eventually(lambda: _has(got, "before"), message="handled before the deletion")
    await bus.js.delete_consumer("RAW", RAW.name)
    await _publish(bus, ["after"], prefix="e")
    await eventually(lambda: _has(got, "after"), message="handled after the deletion")
    await served.close()


async def _outlasted(
    bus: Bus,
    serve: Serve,
    *,
    work: Callable[[str], Awaitable[object]],
    stored: Callable[[], Awaitable[list[str]]],
    restore: Callable[[], Awaitable[object]],
) -> None:
    """``work`` fails on every message for as long as the outage lasts (each message fails
    many times its content budget), then succeeds once ``restore`` ended it: nothing is
    dead-lettered, and every message is ``stored`` in the end."""
    failed: dict[str, int] = {}

    async def handler(msg: Msg) -> None:
        body = msg.data.decode()
        try:
            await work(body)
        except Exception:
            failed[body] = failed.get(body, 0) + 1
            raise

    async def outlasts_budget() -> bool:
        return len(failed) == len(OUTAGE_BODIES) and min(failed.values()) >= OUTAGE_FAILURES

    async def all_stored() -> bool:
        return sorted(await stored()) == OUTAGE_BODIES

    served = serve(OUTAGE, handler)
    await _publish(bus, OUTAGE_BODIES, prefix="o")
    await eventually(outlasts_budget, timeout=60, message="a long outage")
    assert await list_dead_letters(bus) == []
    await restore()
    await eventually(all_stored, timeout=60, message="processed once the outage is over")
    await served.close()
    assert await list_dead_letters(bus) == []


async def test_a_bucket_outage_longer_than_the_budget_dead_letters_nothing(
    bus: Bus, serve: Serve
) -> None:
    config = KeyValueConfig(bucket="t_outage", history=1)
    await bus.js.create_key_value(config)
    await bus.js.delete_key_value("t_outage")

    async def put(body: str) -> None:
        await (await bus.js.key_value("t_outage")).put(body, b"1")

    async def keys() -> list[str]:
        try:
            return list(await (await bus.js.key_value("t_outage")).keys())
        except (BucketNotFoundError, NoKeysError):
            return []

    await _outlasted(
        bus, serve, work=put, stored=keys, restore=lambda: bus.js.create_key_value(config)
    )


async def test_a_stream_outage_longer_than_the_budget_dead_letters_nothing(
    bus: Bus, serve: Serve
) -> None:
    conv = next(s for s in STREAMS if s.name == "CONV")
    await bus.js.delete_stream("CONV")

    async def republish(body: str) -> None:
        await bus.publish_raw("conv.test.v1.x", body.encode(), {"Nats-Msg-Id": f"c-{body}"})

    async def republished() -> list[str]:
        last = (await bus.js.stream_info("CONV")).state.last_seq
        return [(await bus.js.get_msg("CONV", seq)).data.decode() for seq in range(1, last + 1)]

    await _outlasted(
        bus, serve, work=republish, stored=republished, restore=lambda: bus.ensure_stream(conv)
    )


async def test_a_postgres_outage_longer_than_the_budget_dead_letters_nothing(
    bus: Bus, serve: Serve, tmp_path: Path
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg").start()
    pool = await create_pool(pg.url, 4)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE seen (body text PRIMARY KEY)")

        async def insert(body: str) -> None:
            async with pool.acquire(timeout=5) as conn:
                await conn.execute("INSERT INTO seen VALUES ($1)", body)

        async def inserted() -> list[str]:
            try:
                async with pool.acquire(timeout=5) as conn:
                    return [r["body"] for r in await conn.fetch("SELECT body FROM seen")]
            except Exception:
                return []

        async def restart() -> None:
            pg.start()

        pg.stop()
        await _outlasted(bus, serve, work=insert, stored=inserted, restore=restart)
    finally:
        await pool.close()
        pg.stop()


async def test_a_failed_dead_letter_publish_leaves_the_message_redeliverable(
    bus: Bus, serve: Serve
) -> None:
    """The poison message's budget is spent while the DLQ is gone: it is nak'ed, not
    terminated, and lands in the DLQ once the DLQ is back (the handler is not run again)."""
    dlq = next(s for s in STREAMS if s.name == "DLQ")
    calls: list[str] = []

    async def handler(msg: Msg) -> None:
        calls.append(msg.data.decode())
        raise RuntimeError("cannot digest")

    await bus.js.delete_stream("DLQ")
    served = serve(OUTAGE, handler)
    await _publish(bus, ["m0"], prefix="o")

    async def redelivered_while_down() -> bool:
        # every delivery takes a consumer sequence: the budget's handler runs (the last of
        # them spends it), then two or more deliveries that only tried to dead-letter it
        info = await _info(bus, RAW.name)
        spent = len(calls) >= OUTAGE.max_failures
        return (
            spent and info is not None and info.delivered.consumer_seq >= (OUTAGE.max_failures + 2)
        )

    await eventually(redelivered_while_down, timeout=30, message="budget spent, DLQ down")
    await bus.ensure_stream(dlq)
    letters = await eventually(lambda: _letters(bus, 1), timeout=30, message="dead-lettered")
    await served.close()
    assert calls == ["m0", "m0"]  # the content budget, not one more
    assert letters[0].reason == "RuntimeError: cannot digest"
    info = await bus.js.consumer_info("RAW", RAW.name)
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


def test_a_durable_is_named_from_the_topology() -> None:
    d = subscribers.durable("flows", "flows-timers")
    assert d.stream == "FLOW_TIMERS"
    with pytest.raises(subscribers.UnknownDurableError, match="flows-nope"):
        subscribers.durable("flows", "flows-nope")
    with pytest.raises(subscribers.UnknownDurableError, match="nobody"):
        subscribers.durable("nobody", "x")
