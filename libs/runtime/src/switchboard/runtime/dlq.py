"""Dead-letter queue: a poison message goes to ``dlq.<original subject>`` with the reason and
its original headers, so it never blocks its stream and can be inspected and redriven."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import PubAck

from switchboard.events.envelope import H_MSG_ID
from switchboard.events.streams import dlq_subject
from switchboard.runtime.bus import Bus
from switchboard.runtime.schedules import republishable

H_REASON = "dlq-reason"
H_STREAM = "dlq-stream"
H_SEQUENCE = "dlq-sequence"
H_SUBJECT = "dlq-subject"
H_CONSUMER = "dlq-consumer"
H_DELIVERIES = "dlq-deliveries"
H_TIME = "dlq-time"
_DLQ_HEADERS = (H_REASON, H_STREAM, H_SEQUENCE, H_SUBJECT, H_CONSUMER, H_DELIVERIES, H_TIME)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One DLQ entry as read back."""

    sequence: int
    subject: str
    reason: str
    stream: str
    stream_sequence: int
    consumer: str
    deliveries: int
    time: str
    headers: dict[str, str]
    body: bytes


async def dead_letter(
    bus: Bus,
    *,
    subject: str,
    headers: dict[str, str] | None,
    body: bytes,
    reason: str,
    stream: str,
    sequence: int,
    consumer: str,
    deliveries: int,
) -> PubAck:
    """Publish a poison message to the DLQ; idempotent per (stream, sequence, consumer).

    A message a schedule fired keeps the schedule's headers; the DLQ (no message schedules)
    refuses any message with them (400 "message schedules is disabled"). A message published
    on a condition (an aggregate's event, a held send) keeps it; on the DLQ's subject it
    fails ("wrong last sequence"). Both are left out: dead-lettered, and redriven, it is a
    plain message."""
    hdrs = republishable(headers or {})
    hdrs.update(
        {
            H_MSG_ID: f"dlq:{stream}:{sequence}:{consumer}",
            H_REASON: reason[:2000],
            H_STREAM: stream,
            H_SEQUENCE: str(sequence),
            H_SUBJECT: subject,
            H_CONSUMER: consumer,
            H_DELIVERIES: str(deliveries),
            H_TIME: datetime.now(UTC).isoformat(),
        }
    )
    return await bus.publish_raw(dlq_subject(subject), body, hdrs)


async def dead_letter_msg(
    bus: Bus, msg: Msg, *, reason: str, consumer: str, body: bytes | None = None
) -> PubAck:
    """``dead_letter`` for a message delivered by a durable consumer: where it came from
    and how often it was delivered are read from its metadata. ``body`` replaces the
    message's own (a login command's secret must not reach the DLQ)."""
    meta = msg.metadata
    return await dead_letter(
        bus,
        subject=msg.subject,
        headers=dict(msg.headers or {}),
        body=msg.data if body is None else body,
        reason=reason,
        stream=meta.stream,
        sequence=meta.sequence.stream,
        consumer=consumer,
        deliveries=meta.num_delivered,
    )


async def list_dead_letters(bus: Bus, limit: int = 100) -> list[DeadLetter]:
    """The oldest ``limit`` entries of the DLQ stream."""
    info = await bus.js.stream_info("DLQ")
    letters: list[DeadLetter] = []
    seq = info.state.first_seq
    while seq and seq <= info.state.last_seq and len(letters) < limit:
        try:
            msg = await bus.js.get_msg("DLQ", seq)
        except Exception:
            seq += 1
            continue
        h: dict[str, Any] = dict(msg.headers or {})
        letters.append(
            DeadLetter(
                sequence=seq,
                subject=h.get(H_SUBJECT, ""),
                reason=h.get(H_REASON, ""),
                stream=h.get(H_STREAM, ""),
                stream_sequence=int(h.get(H_SEQUENCE, 0)),
                consumer=h.get(H_CONSUMER, ""),
                deliveries=int(h.get(H_DELIVERIES, 0)),
                time=h.get(H_TIME, ""),
                headers={k: v for k, v in h.items() if k not in _DLQ_HEADERS},
                body=msg.data or b"",
            )
        )
        seq += 1
    return letters


async def redrive(bus: Bus, letter: DeadLetter) -> PubAck:
    """Publish a dead letter again on its original subject, then remove it from the DLQ.

    It gets a fresh ``Nats-Msg-Id`` (the original may still be inside the duplicate window);
    consumers are idempotent, so reprocessing cannot double an effect.
    """
    headers = republishable(dict(letter.headers))  # an entry an older version wrote kept them
    headers[H_MSG_ID] = f"redrive:{letter.stream}:{letter.stream_sequence}:{letter.sequence}"
    ack = await bus.publish_raw(letter.subject, letter.body, headers)
    await bus.delete_msg("DLQ", letter.sequence)  # a redrive racing this one took it: fine
    return ack
