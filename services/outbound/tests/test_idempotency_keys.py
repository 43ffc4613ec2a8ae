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
