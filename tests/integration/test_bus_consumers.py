"""The runtime on a real JetStream: provisioning, pull workers with bounded retries and the
DLQ, redrive, and the encrypted accounts registry with its live cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig
from nats.js.errors import NoKeysError
from tests.support.stack import keyring

from switchboard.events.catalog.common import Channel
from switchboard.events.streams import BUCKETS, STREAMS
from switchboard.runtime.accounts import Account, AccountCache, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import ConsumerSpec, PermanentError, PullWorker
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.db import create_pool
from switchboard.runtime.dlq import list_dead_letters, redrive
from switchboard.runtime.embedded import EmbeddedPostgres
from switchboard.runtime.testing import eventually


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_url, name="test")
    await bus.provision()
    yield bus
    await bus.close()


async def test_provisioning_is_idempotent(bus: Bus) -> None:
    await bus.provision()
    await asyncio.gather(bus.provision(), bus.provision())
    names = {s.config.name for s in await bus.js.streams_info()}
    assert {s.name for s in STREAMS} | {f"KV_{b.name}" for b in BUCKETS} <= names


async def _run(worker: PullWorker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.run())


async def test_failing_message_is_retried_then_dead_lettered_without_blocking(bus: Bus) -> None:
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

    spec = ConsumerSpec(
        stream="RAW",
        durable="t-worker",
        filter_subjects=("raw.>",),
        max_deliver=3,
        backoff_s=(0.05,),
        ack_wait_s=5,
    )
    worker = PullWorker(bus, spec, handler)
    task = await _run(worker)
    for i, body in enumerate(["a", "poison", "b", "malformed", "c"]):
        await bus.publish_raw(
            "raw.test.v1.acct",
            body.encode(),
            {"Nats-Msg-Id": f"m{i}", "ce-id": f"m{i}", "x-tag": body},
        )
    letters = await eventually(lambda: _letters(bus, 2), message="two dead letters")
    worker.stop.set()
    await task
    assert sorted(done) == ["a", "b", "c"]
    assert seen["poison"] == 3  # bounded: max_deliver attempts, then the DLQ
    assert seen["malformed"] == 1  # permanent: straight to the DLQ
    by_body = {letter.body: letter for letter in letters}
    assert by_body[b"poison"].reason == "RuntimeError: cannot digest"
    assert by_body[b"poison"].headers["x-tag"] == "poison"
    assert by_body[b"poison"].subject == "raw.test.v1.acct"
    assert by_body[b"malformed"].reason == "not a payload"
    assert by_body[b"malformed"].consumer == "t-worker"

    # redrive puts it back on its subject (with a fresh id) and removes it from the DLQ
    before = (await bus.js.stream_info("RAW")).state.messages
    await redrive(bus, by_body[b"malformed"])
    assert (await bus.js.stream_info("RAW")).state.messages == before + 1
    assert len(await list_dead_letters(bus)) == 1


async def _letters(bus: Bus, n: int) -> list[object] | None:
    letters = await list_dead_letters(bus)
    return letters if len(letters) >= n else None  # type: ignore[return-value]


async def test_accounts_are_encrypted_at_rest_and_cached_live(bus: Bus) -> None:
    kv = await bus.kv("accounts")
    store = AccountStore(kv, keyring())
    cache = AccountCache(store)
    stop = asyncio.Event()
    task = asyncio.create_task(cache.run(stop))
    await asyncio.wait_for(cache.loaded.wait(), 5)
    await store.put(
        Account(
            channel=Channel.TELEGRAM,
            id="bot1",
            workspace_id="w",
            secrets={"token": "123:PLAINTEXT-TOKEN", "webhook_secret": "whs-1"},
        )
    )
    entry = await kv.get("telegram.bot1")
    assert entry.value is not None
    assert b"PLAINTEXT-TOKEN" not in entry.value
    assert b"whs-1" not in entry.value
    found = await eventually(lambda: _get(cache, "bot1"), message="cache sees the account")
    assert found.secrets["token"] == "123:PLAINTEXT-TOKEN"
    assert "PLAINTEXT" not in repr(found)
    assert found.public()["secrets"] == ["token", "webhook_secret"]

    # rotation: a new active key, old records still readable, re-encryption moves them
    new = Keyring({"k9": b"\x01" * 32, **store.keyring.keys}, "k9")
    rotated = AccountStore(kv, new)
    assert (await rotated.get(Channel.TELEGRAM, "bot1")) is not None
    assert await rotated.reencrypt_all() == 1
    raw = (await kv.get("telegram.bot1")).value or b""
    assert b'"k9:' in raw

    # the old instance lacks k9 but can still delete the account
    assert await store.delete(Channel.TELEGRAM, "bot1") is True
    assert await store.delete(Channel.TELEGRAM, "bot1") is False
    await eventually(lambda: _gone(cache, "bot1"), message="cache drops the account")
    stop.set()
    await task


async def test_records_no_configured_key_opens_are_reported_not_fatal(bus: Bus) -> None:
    # Found by schemathesis: after a key was retired too early, listing and re-encrypting
    # accounts answered 500. They now list what they can and name what they cannot.
    kv = await bus.kv("accounts")
    old = AccountStore(kv, Keyring({"k0": b"\x02" * 32}, "k0"))
    await old.put(Account(channel=Channel.VIBER, id="legacy", secrets={"token": "viber-legacy-1"}))
    store = AccountStore(kv, keyring())
    await store.put(Account(channel=Channel.VIBER, id="fresh", secrets={"token": "viber-fresh-1"}))
    readable, unreadable = await store.scan()
    assert [a.id for a in readable] == ["fresh"]
    assert unreadable == [
        ("viber.legacy", "secret was encrypted with key 'k0', which is not configured")
    ]
    assert [a.id for a in await store.list()] == ["fresh"]
    assert await store.reencrypt_all() == 1
    assert b'"k0:' in ((await kv.get("viber.legacy")).value or b""), "left as it was"
    # Ids no account can have are simply absent (they are not valid KV keys either).
    assert await store.get(Channel.VIBER, "ünïcode;") is None
    assert await store.delete(Channel.VIBER, "a/b") is False


async def _get(cache: AccountCache, name: str) -> Account | None:
    return cache.get(Channel.TELEGRAM, name)


async def _gone(cache: AccountCache, name: str) -> bool:
    return cache.get(Channel.TELEGRAM, name) is None


# Outages. The old policy gave a message 5 deliveries over ~25 s whatever failed, so an
# outage longer than that moved accepted messages to the DLQ. Timings are shrunk through
# the spec: the content budget here is 2 failures 50 ms apart, and each outage lasts until
# every message has failed many times that.
_OUTAGE_SPEC = ConsumerSpec(
    stream="RAW",
    durable="t-outage",
    filter_subjects=("raw.>",),
    max_deliver=2,
    backoff_s=(0.05,),
    ack_wait_s=5,
    infra_backoff_s=0.02,
    infra_backoff_cap_s=0.1,
)
_OUTAGE_FAILURES = 10  # per message, five times its content budget


async def _publish_raw(bus: Bus, n: int) -> None:
    for i in range(n):
        await bus.publish_raw(
            "raw.test.v1.acct", f"m{i}".encode(), {"Nats-Msg-Id": f"o{i}", "ce-id": f"o{i}"}
        )


async def _outage_outlasts_budget(failed: dict[str, int], n: int) -> bool:
    return len(failed) == n and min(failed.values()) >= _OUTAGE_FAILURES


async def test_a_bucket_outage_longer_than_the_budget_dead_letters_nothing(bus: Bus) -> None:
    bucket = await bus.js.create_key_value(KeyValueConfig(bucket="t_outage", history=1))
    failed: dict[str, int] = {}

    async def handler(msg: Msg) -> None:
        body = msg.data.decode()
        try:
            kv = await bus.js.key_value("t_outage")
            await kv.put(body, b"1")
        except Exception:
            failed[body] = failed.get(body, 0) + 1
            raise

    await bus.js.delete_key_value("t_outage")
    worker = PullWorker(bus, _OUTAGE_SPEC, handler)
    task = asyncio.create_task(worker.run())
    await _publish_raw(bus, 3)
    await eventually(
        lambda: _outage_outlasts_budget(failed, 3), timeout=60, message="a long outage"
    )
    assert await list_dead_letters(bus) == []
    bucket = await bus.js.create_key_value(KeyValueConfig(bucket="t_outage", history=1))

    async def all_stored() -> bool:
        try:
            return sorted(await bucket.keys()) == ["m0", "m1", "m2"]
        except NoKeysError:
            return False

    await eventually(all_stored, timeout=30, message="processed once the bucket is back")
    worker.stop.set()
    await task
    assert await list_dead_letters(bus) == []
    for key in ("m0", "m1", "m2"):
        assert (await bucket.get(key)).revision is not None


async def test_a_stream_outage_longer_than_the_budget_dead_letters_nothing(bus: Bus) -> None:
    conv = next(s for s in STREAMS if s.name == "CONV")
    failed: dict[str, int] = {}
    stored: list[str] = []

    async def handler(msg: Msg) -> None:
        body = msg.data.decode()
        try:
            await bus.publish_raw("conv.test.v1.x", msg.data, {"Nats-Msg-Id": f"c-{body}"})
        except Exception:
            failed[body] = failed.get(body, 0) + 1
            raise
        stored.append(body)

    await bus.js.delete_stream("CONV")
    worker = PullWorker(bus, _OUTAGE_SPEC, handler)
    task = asyncio.create_task(worker.run())
    await _publish_raw(bus, 3)
    await eventually(
        lambda: _outage_outlasts_budget(failed, 3), timeout=60, message="a long outage"
    )
    assert await list_dead_letters(bus) == []
    await bus.ensure_stream(conv)

    async def all_stored() -> bool:
        return (await bus.js.stream_info("CONV")).state.messages == 3

    await eventually(all_stored, timeout=30, message="processed once the stream is back")
    worker.stop.set()
    await task
    assert sorted(stored) == ["m0", "m1", "m2"]
    assert await list_dead_letters(bus) == []


async def test_a_failed_dead_letter_publish_leaves_the_message_redeliverable(bus: Bus) -> None:
    """The poison message's budget is spent while the DLQ is gone: it is nak'ed, not
    terminated, and lands in the DLQ once the DLQ is back (the handler is not run again)."""
    dlq = next(s for s in STREAMS if s.name == "DLQ")
    calls: list[str] = []

    async def handler(msg: Msg) -> None:
        calls.append(msg.data.decode())
        raise RuntimeError("cannot digest")

    await bus.js.delete_stream("DLQ")
    worker = PullWorker(bus, _OUTAGE_SPEC, handler)
    task = asyncio.create_task(worker.run())
    await _publish_raw(bus, 1)

    async def redelivered_while_down() -> bool:
        # every delivery takes a consumer sequence: two handler runs, then two or more
        # deliveries that only tried to dead-letter it
        info = await bus.js.consumer_info("RAW", "t-outage")
        return worker.budget.spent(1, _OUTAGE_SPEC.policy) and info.delivered.consumer_seq >= 4

    await eventually(redelivered_while_down, timeout=30, message="budget spent, DLQ down")
    await bus.ensure_stream(dlq)
    letters = await eventually(lambda: _letters(bus, 1), timeout=30, message="dead-lettered")
    worker.stop.set()
    await task
    assert calls == ["m0", "m0"]  # the content budget, not one more
    assert letters[0].reason == "RuntimeError: cannot digest"  # type: ignore[attr-defined]
    info = await bus.js.consumer_info("RAW", "t-outage")
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


async def test_a_postgres_outage_longer_than_the_budget_dead_letters_nothing(
    bus: Bus, tmp_path: Path
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg").start()
    pool = await create_pool(pg.url, 4)
    failed: dict[str, int] = {}
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE seen (body text PRIMARY KEY)")

        async def handler(msg: Msg) -> None:
            body = msg.data.decode()
            try:
                async with pool.acquire(timeout=5) as conn:
                    await conn.execute("INSERT INTO seen VALUES ($1)", body)
            except Exception:
                failed[body] = failed.get(body, 0) + 1
                raise

        pg.stop()
        worker = PullWorker(bus, _OUTAGE_SPEC, handler)
        task = asyncio.create_task(worker.run())
        await _publish_raw(bus, 3)
        await eventually(
            lambda: _outage_outlasts_budget(failed, 3), timeout=60, message="a long outage"
        )
        assert await list_dead_letters(bus) == []
        pg.start()

        async def all_stored() -> bool:
            try:
                async with pool.acquire(timeout=5) as conn:
                    rows = await conn.fetch("SELECT body FROM seen ORDER BY body")
            except Exception:
                return False
            return [r["body"] for r in rows] == ["m0", "m1", "m2"]

        await eventually(all_stored, timeout=60, message="processed once Postgres is back")
        worker.stop.set()
        await task
        assert await list_dead_letters(bus) == []
    finally:
        await pool.close()
        pg.stop()
