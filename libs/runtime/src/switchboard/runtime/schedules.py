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

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.js.api import StreamConfig
from pydantic import Field

from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import ConfigError

SCHEDULE = "Nats-Schedule"
TARGET = "Nats-Schedule-Target"
SCHEDULER = "Nats-Scheduler"  # on a fired message: the subject of the schedule that fired it
NEXT = "Nats-Schedule-Next"  # on a fired message


def at_header(due_at: datetime) -> str:
    """``@at <RFC 3339 UTC>`` as nats-server reads it."""
    return "@at " + due_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def scheduled_at(headers: Mapping[str, str] | None) -> datetime | None:
    """When a stored one-off schedule fires (its ``@at`` header), None for anything else."""
    spec = (headers or {}).get(SCHEDULE, "")
    if not spec.startswith("@at "):
        return None
    try:
        return datetime.fromisoformat(spec.removeprefix("@at ").replace("Z", "+00:00"))
    except ValueError:
        return None


def schedule_headers(due_at: datetime, target: str) -> dict[str, str]:
    """The headers that make a stored message a one-off schedule firing on ``target``."""
    return {SCHEDULE: at_header(due_at), TARGET: target}


# On a schedule set short of its message's time (``hold_until``): the fired copy is to be
# held again, not acted on. A header, so that no one compares clocks to tell.
HOP = "Switchboard-Schedule-Hop"


def hold_until(due: datetime, now: datetime, hop: timedelta) -> datetime:
    """When a schedule for ``due`` fires: at ``due``, or after ``hop`` to be held again (a
    stream drops a message after its ``max_age``, a schedule too). Pure."""
    return min(due, now + hop)


def held_headers(due: datetime, now: datetime, hop: timedelta, target: str) -> dict[str, str]:
    """The schedule headers for ``due`` held at most ``hop`` at a time (``HOP`` marks a hop)."""
    at = hold_until(due, now, hop)
    return schedule_headers(at, target) | ({HOP: "1"} if at < due else {})


def hop_setting(hop: timedelta, what: str, limits: str) -> Any:
    """A service setting for ``hop`` in seconds: at most ``hop``, which fits the ``limits``
    of what a hop renews (a shorter one is for tests)."""
    seconds = hop.total_seconds()
    return Field(
        seconds,
        gt=0,
        le=seconds,
        description=f"{what} further ahead is held this long at a time, then again ({limits})",
    )


# What a publish was conditioned on (``Nats-Expected-Last-Subject-Sequence``, ...): stored
# with the message, and about the subject it was first published to.
PRECONDITION_PREFIX = "Nats-Expected-"


def republishable(headers: dict[str, str]) -> dict[str, str]:
    """The headers of a stored message, to publish it again as a plain message: without
    those of a schedule or of its firing, and without the preconditions of its first
    publish. Kept, a copy of a held send (whose schedule was stored on the condition of the
    one before it) was refused on its lane, "wrong last sequence" (500 on a reschedule),
    and the DLQ refused a message published on a condition, for ever."""
    return {
        k: v
        for k, v in headers.items()
        if k not in (SCHEDULE, TARGET, SCHEDULER, NEXT, HOP)
        and not k.startswith(PRECONDITION_PREFIX)
    }


async def require_schedules(bus: Bus, stream: str, service: str, what: str) -> None:
    """Refuse to start (one sentence) when ``stream`` does not allow message schedules:
    a stream provisioned by an older version, or by hand, would refuse every one of them."""
    info = await bus.js.stream_info(stream)
    config: StreamConfig = info.config
    if not config.allow_msg_schedules:
        raise ConfigError(
            f"{service}: stream {stream} must allow message schedules "
            f"(allow_msg_schedules, nats-server >= 2.12) for {what}."
        )
