"""JetStream message schedules (nats-server >= 2.12, ADR-51): a message stored on a subject
of its own that the server publishes to a target subject of the same stream at its time,
then removes. What must happen at a time whichever instance is alive uses them: flow timers
and schedule triggers, and sends scheduled ahead (outbound).

Checked against the embedded server: a schedule fires within milliseconds of its time (at
once when the time is past), one subject holds one schedule (publishing again replaces it),
and the message it fires keeps the schedule's other headers, with ``Nats-Scheduler`` naming
the schedule's subject.
"""

from __future__ import annotations

from datetime import UTC, datetime

SCHEDULE = "Nats-Schedule"
TARGET = "Nats-Schedule-Target"
SCHEDULER = "Nats-Scheduler"  # on a fired message: the subject of the schedule that fired it
NEXT = "Nats-Schedule-Next"  # on a fired message


def at_header(due_at: datetime) -> str:
    """``@at <RFC 3339 UTC>`` as nats-server reads it."""
    return "@at " + due_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def schedule_headers(due_at: datetime, target: str) -> dict[str, str]:
    """The headers that make a stored message a one-off schedule firing on ``target``."""
    return {SCHEDULE: at_header(due_at), TARGET: target}


def unscheduled(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` without those of a schedule or of its firing (a plain message again)."""
    return {k: v for k, v in headers.items() if k not in (SCHEDULE, TARGET, SCHEDULER, NEXT)}
