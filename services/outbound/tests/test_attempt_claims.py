"""``attempts.claim`` on a real JetStream KV: a copy of a command whose owner still waits is
left to the owner, an orphaned record (its owner left the stream unfinished) is taken over by
exactly one of the copies racing for it, and another body is a conflict."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from switchboard.events.catalog.outbound import OutText
from switchboard.outbound.attempts import Attempt, Attempts, Verdict, claim
from switchboard.runtime.bus import Bus

from .support import command, record_of

DAY = timedelta(hours=24)


def record(owner: int, text: str = "hi") -> Attempt:
    return record_of(command(OutText(text=text), message_id="m1"), owner).step("queued")


@pytest.fixture
async def attempts(bus: Bus) -> Attempts:
    return Attempts(await bus.kv("sends"))


async def waiting(_: int) -> bool:
    return True


async def first_gone(seq: int) -> bool:
    """Still in the stream? Only the first owner (5) left it; the copies are there."""
    return seq != 5


async def test_a_copy_waits_for_its_owner_and_takes_over_an_orphan(attempts: Attempts) -> None:
    decided, first, created = await claim(attempts, record(owner=5), DAY, waiting)
    assert (decided, first.owner, created) == (Verdict.NEW, 5, True)
    decided, found, created = await claim(attempts, record(owner=5), DAY, waiting)
    assert (decided, created) == (Verdict.PROCEED, False)  # a redelivery of the owner
    decided, found, _ = await claim(attempts, record(owner=9), DAY, waiting)
    assert (decided, found.owner) == (Verdict.OTHER_OWNER, 5)
    # the owner left the stream unfinished: of two copies racing, one takes the record over
    results = await asyncio.gather(
        claim(attempts, record(owner=9), DAY, first_gone),
        claim(attempts, record(owner=10), DAY, first_gone),
    )
    winners = [r for r in results if r[0] is Verdict.NEW]
    assert len(winners) == 1
    stored = await attempts.get("demo", "m1")
    assert stored is not None
    assert stored.owner == winners[0][1].owner
    loser = next(r for r in results if r[0] is not Verdict.NEW)
    assert (loser[0], loser[1].owner) == (Verdict.OTHER_OWNER, stored.owner)


async def test_another_body_is_a_conflict_and_changes_nothing(attempts: Attempts) -> None:
    await claim(attempts, record(owner=5), DAY, waiting)
    decided, found, _ = await claim(attempts, record(owner=9, text="changed"), DAY, first_gone)
    assert (decided, found.owner) == (Verdict.CONFLICT, 5)
    stored = await attempts.get("demo", "m1")
    assert stored is not None
    assert stored.owner == 5


async def test_an_id_is_remembered_for_the_retention_on_the_clock_the_service_gives(
    bus: Bus,
) -> None:
    """A record is dated by the clock the service gives (the server's), whatever time the
    command that built it carries, and compared with the same clock."""
    shared = [datetime(2026, 1, 1, tzinfo=UTC)]
    attempts = Attempts(await bus.kv("sends"), now=lambda: shared[0])
    first = record(owner=5)
    first = first.model_copy(update={"created_at": datetime(2030, 1, 1, tzinfo=UTC)})
    decided, stored, _ = await claim(attempts, first, DAY, waiting)
    assert (decided, stored.created_at) == (Verdict.NEW, shared[0])
    await attempts.put(stored.step("sent"))
    shared[0] += timedelta(hours=23)
    assert (await claim(attempts, record(owner=9), DAY, waiting))[0] is Verdict.DONE
    shared[0] += timedelta(hours=2)
    decided, taken, created = await claim(attempts, record(owner=9), DAY, waiting)
    assert (decided, taken.owner, created, taken.created_at) == (
        Verdict.NEW, 9, True, shared[0]
    )  # fmt: skip


async def test_the_heir_of_a_held_send_goes_on_with_its_record(attempts: Attempts) -> None:
    """The copy a send's schedule fired (its owner, the schedule, gone once it fired) goes on
    with the record as it is: the same send, not a new use of the id (which would announce
    it queued again and forget its history)."""
    _, first, _ = await claim(attempts, record(owner=5), DAY, waiting)
    stepped = first.step("queued", reason="held")
    found = await attempts.read("demo", "m1")
    assert found is not None
    assert await attempts.replace(stepped, found[1])
    decided, heir, created = await claim(attempts, record(owner=9), DAY, first_gone, heir=True)
    assert (decided, heir.owner, created) == (Verdict.PROCEED, 9, False)
    assert heir.history == stepped.history  # kept, not started over
    assert heir.created_at == first.created_at
    # not an heir: the same orphan is a new use of the id
    decided, other, created = await claim(
        attempts, record(owner=11), DAY, lambda seq: first_gone(5 if seq == 9 else seq)
    )
    assert (decided, other.owner, created) == (Verdict.NEW, 11, True)
