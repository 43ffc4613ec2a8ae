"""A stored message published again (dead-lettered, or a held send's copy) carries neither
its schedule's headers nor the conditions its first publish was made under: kept, they
made JetStream refuse the new publish ("wrong last sequence"), for ever."""

from __future__ import annotations

import pytest

from switchboard.runtime.aggregates import EXPECTED_LAST_SUBJECT_SEQUENCE
from switchboard.runtime.bus import Bus
from switchboard.runtime.dlq import DeadLetter, dead_letter, dlq_subject, redrive
from switchboard.runtime.schedules import SCHEDULE, TARGET, republishable


def test_republishable_drops_schedule_headers_and_preconditions_only() -> None:
    headers = {
        SCHEDULE: "@at 2026-12-07T09:00:00Z",
        TARGET: "cmd.outbound.send.x",
        EXPECTED_LAST_SUBJECT_SEQUENCE: "7",
        "Nats-Expected-Last-Subject-Sequence-Subject": "crm.contact.c1",
        "Nats-Expected-Stream": "CRM",
        "Nats-Msg-Id": "m1",
        "Sb-Workspace": "demo",
    }
    assert republishable(headers) == {"Nats-Msg-Id": "m1", "Sb-Workspace": "demo"}


@pytest.mark.parametrize("before", [1, 3])
async def test_a_message_published_on_a_condition_is_dead_lettered(bus: Bus, before: int) -> None:
    subject = f"dlq.t.conditional{before}"
    last = None
    for i in range(before):
        last = await bus.publish_raw(subject, b"earlier", {"Nats-Msg-Id": f"c{before}-{i}"})
    assert last is not None
    condition = {EXPECTED_LAST_SUBJECT_SEQUENCE: str(last.seq), "Nats-Msg-Id": f"c{before}"}
    ack = await bus.publish_raw(subject, b"poison", condition)
    stored = await bus.js.get_msg(ack.stream, ack.seq)
    assert (stored.headers or {}).get(EXPECTED_LAST_SUBJECT_SEQUENCE) == str(last.seq)

    entry = await dead_letter(
        bus,
        subject=subject,
        headers=dict(stored.headers or {}),
        body=stored.data or b"",
        reason="poison",
        stream=ack.stream,
        sequence=ack.seq,
        consumer="t",
        deliveries=1,
    )
    kept = await bus.js.get_msg(entry.stream, entry.seq)
    assert kept.subject == dlq_subject(subject)
    assert kept.data == b"poison"
    assert not [k for k in kept.headers or {} if k.startswith("Nats-Expected-")]


async def test_a_dead_letter_kept_with_its_condition_is_redriven(bus: Bus) -> None:
    """An entry dead-lettered by an older version kept the condition of its first publish;
    redriven on its subject as it was, JetStream refused it."""
    subject = "dlq.t.redriven"
    first = await bus.publish_raw(subject, b"earlier", {"Nats-Msg-Id": "r-0"})
    letter = DeadLetter(
        sequence=first.seq,
        subject=subject,
        reason="poison",
        stream=first.stream,
        stream_sequence=first.seq,
        consumer="t",
        deliveries=1,
        time="",
        headers={EXPECTED_LAST_SUBJECT_SEQUENCE: "999", "Sb-Workspace": "demo"},
        body=b"again",
    )
    ack = await redrive(bus, letter)
    again = await bus.js.get_msg(ack.stream, ack.seq)
    assert (again.data, (again.headers or {}).get("Sb-Workspace")) == (b"again", "demo")
