"""``Idempotency-Key`` claims on a real KV bucket, seen from a second instance: a claim in
flight is taken over only after this instance has watched it unchanged for the lease, on its
own monotonic clock, whatever time the claimant's clock wrote into it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard.outbound.idempotency import (
    Claim,
    IdempotencyKeys,
    InFlight,
    KeyRecord,
    Replay,
    key_of,
)
from switchboard.runtime.bus import Bus


async def test_a_live_claim_from_a_clock_an_hour_behind_is_not_taken_over(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="idempotency")
    try:
        await bus.provision()
        kv = await bus.kv("sends")
        now = [100.0]
        b = IdempotencyKeys(kv, "skew", lease_s=30, clock=lambda: now[0])
        # instance A claims with its clock an hour behind ours
        behind = KeyRecord(
            fingerprint="f1", state="in_flight", at=datetime.now(UTC) - timedelta(hours=1)
        )
        revision = await kv.create(
            key_of("skew", "demo", "k1"), behind.model_dump_json(exclude_none=True).encode()
        )
        assert await b.begin("demo", "k1", "f1") == InFlight(30)
        now[0] += 29.5
        assert await b.begin("demo", "k1", "f1") == InFlight(1)
        # A answers: the claim changed, so B replays A's answer
        a = IdempotencyKeys(kv, "skew")
        await a.complete(Claim(key_of("skew", "demo", "k1"), "f1", revision), 202, {"ok": 1})
        assert await b.begin("demo", "k1", "f1") == Replay(202, {"ok": 1})

        # a claim whose request died: taken over once B watched it for the lease
        dead = await a.begin("demo", "k2", "f1")
        assert isinstance(dead, Claim)
        assert await b.begin("demo", "k2", "f1") == InFlight(30)
        now[0] += 30
        taken = await b.begin("demo", "k2", "f1")
        assert isinstance(taken, Claim)
        assert taken.revision > dead.revision
    finally:
        await bus.close()


async def test_an_answer_is_kept_for_the_retention_on_the_clock_the_service_gives(
    nats_url: str,
) -> None:
    """The answer's time and the reader's now come from one clock (the server's, in the
    service): not from each instance's own, which may be a day apart."""
    bus = await Bus.connect(nats_url, name="idempotency")
    try:
        await bus.provision()
        kv = await bus.kv("sends")
        shared = [datetime(2026, 1, 1, tzinfo=UTC)]
        a = IdempotencyKeys(kv, "retain", retention_s=86400, wall=lambda: shared[0])
        b = IdempotencyKeys(kv, "retain", retention_s=86400, wall=lambda: shared[0])
        claim = await a.begin("demo", "k1", "f1")
        assert isinstance(claim, Claim)
        await a.complete(claim, 202, {"ok": 1})
        shared[0] += timedelta(hours=23)
        assert await b.begin("demo", "k1", "f1") == Replay(202, {"ok": 1})
        shared[0] += timedelta(hours=2)
        assert isinstance(await b.begin("demo", "k1", "f2"), Claim)  # forgotten: a new use
    finally:
        await bus.close()
