"""Scheduled sends as pure decisions: times need a timezone (over HTTP and on the bus), and
when a cancel or a reschedule may still be made (``schedule.refuse_change``), and when a
held send comes back to its lane (``runtime.schedules.hold_until``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from nats.js.api import RawStreamMsg
from pydantic import ValidationError

from switchboard.events import encode
from switchboard.events.catalog.outbound import SendMessage, StartCampaign
from switchboard.events.streams import OUTBOUND, SENDS
from switchboard.outbound.attempts import Attempt
from switchboard.outbound.schedule import (
    GUARD,
    HOLD_HOP,
    ScheduleChange,
    effective_time,
    held_subject,
    may_store,
    refuse_change,
    refuse_done,
)
from switchboard.runtime.http import invalid
from switchboard.runtime.schedules import HOP, held_headers, hold_until, scheduled_at

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def body(**extra: Any) -> dict[str, Any]:
    return {
        "message_id": "m1",
        "channel": "telegram",
        "account": "shop",
        "recipient": "42",
        "content": {"kind": "text", "text": "hi"},
        **extra,
    }


@pytest.mark.parametrize("field", ["not_before", "expires_at"])
def test_a_naive_time_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SendMessage.model_validate(body(**{field: "2026-12-05T12:00:00"}))
    answer = invalid(caught.value, "invalid_message")
    assert answer.status_code == 422
    details = orjson.loads(bytes(answer.body))
    assert [e["path"] for e in details["errors"]] == [f"body.{field}"]
    assert details["detail"].startswith(f"body.{field}: ")


def test_a_time_with_an_offset_is_kept_as_that_instant() -> None:
    cmd = SendMessage.model_validate(body(not_before="2026-12-05T14:00:00+02:00"))
    assert cmd.not_before == NOW


def test_a_naive_time_in_a_campaign_is_refused() -> None:
    with pytest.raises(ValidationError, match="not_before"):
        StartCampaign.model_validate(
            {
                "campaign_id": "c",
                "channel": "telegram",
                "accounts": ["shop"],
                "content": {"kind": "text", "text": "hi"},
                "not_before": "2026-12-05T12:00:00",
            }
        )


def test_a_naive_time_on_the_bus_is_a_permanent_rejection_not_a_type_error() -> None:
    """The seed's bug: a naive ``not_before`` decoded, then ``now < not_before`` raised a
    TypeError that was retried into the DLQ. Now it never decodes (PermanentError: the DLQ
    at once, with the reason naming the field)."""
    from switchboard.runtime.consumer import PermanentError, decode_or_reject

    enc = encode(SendMessage.model_validate(body()), source="test", workspace_id="demo")
    data = orjson.loads(enc.body)
    data["not_before"] = "2026-12-05T12:00:00"

    class Msg:
        subject = enc.subject
        headers = dict(enc.headers)

    msg: Any = Msg()
    msg.data = orjson.dumps(data)
    with pytest.raises(PermanentError, match="not_before"):
        decode_or_reject(msg)


def test_the_last_reschedule_decides_the_time() -> None:
    later = NOW + timedelta(hours=1)
    assert effective_time(NOW, None) == NOW
    assert effective_time(NOW, ScheduleChange(action="reschedule", not_before=later, at=NOW)) == (
        later
    )
    assert effective_time(NOW, ScheduleChange(action="cancel", at=NOW)) == NOW


def test_a_pending_send_may_be_cancelled_or_moved_later() -> None:
    due = NOW + timedelta(minutes=5)
    ok = {"due": due, "expires_at": None, "now": NOW}
    assert refuse_change(**ok, new_time=None) is None
    assert refuse_change(**ok, new_time=due + timedelta(minutes=1)) is None


def test_a_send_that_left_or_is_leaving_cannot_be_changed() -> None:
    due = NOW + timedelta(minutes=5)
    for now in (due - GUARD / 2, due + GUARD):
        refused = refuse_change(due=due, expires_at=None, now=now, new_time=None)
        assert refused is not None
        assert refused.status == 409
    unscheduled = refuse_change(due=None, expires_at=None, now=NOW, new_time=None)
    assert unscheduled is not None
    assert unscheduled.status == 409


def test_a_reschedule_into_the_past_or_past_expiry_is_refused_naming_the_field() -> None:
    due = NOW + timedelta(minutes=5)
    earlier = refuse_change(due=due, expires_at=None, now=NOW, new_time=due - timedelta(minutes=1))
    assert earlier is None  # earlier is allowed: the command is replaced
    past = refuse_change(due=due, expires_at=None, now=NOW, new_time=NOW - timedelta(seconds=1))
    assert past is not None
    assert past.status == 422
    assert past.reason.startswith("not_before")
    expired = refuse_change(
        due=due, expires_at=due + timedelta(minutes=1), now=NOW,
        new_time=due + timedelta(minutes=2),
    )  # fmt: skip
    assert expired is not None
    assert expired.status == 422


@pytest.mark.parametrize(
    ("due_in", "back_in"),
    [
        (timedelta(seconds=5), timedelta(seconds=5)),  # due within a hop: back at its time
        (HOLD_HOP, HOLD_HOP),
        (HOLD_HOP + timedelta(seconds=1), HOLD_HOP),  # further: back after a hop, held again
        (timedelta(days=400), HOLD_HOP),
    ],
)
def test_a_held_send_comes_back_at_its_time_or_after_a_hop(
    due_in: timedelta, back_in: timedelta
) -> None:
    assert hold_until(NOW + due_in, NOW, HOLD_HOP) == NOW + back_in
    hop = HOP in held_headers(NOW + due_in, NOW, HOLD_HOP, "cmd.outbound.send.x")
    assert hop == (back_in < due_in)  # the fired copy says it is a hop, no clock needed


def test_a_hop_ends_before_the_stream_drops_the_message_or_the_bucket_the_record() -> None:
    """Each hop is a new message and a rewritten record; both must outlive it, with room
    for an outage of the service as long again."""
    assert timedelta(seconds=OUTBOUND.max_age_s) > 2 * HOLD_HOP
    assert timedelta(seconds=SENDS.ttl_s) > 2 * HOLD_HOP
    assert OUTBOUND.allow_msg_schedules  # a held send is a message schedule of OUTBOUND


def test_a_send_has_one_held_subject_per_workspace() -> None:
    assert held_subject("demo", "m1") == held_subject("demo", "m1")
    assert held_subject("demo", "m1") != held_subject("other", "m1")
    assert held_subject("demo", "m.1 >").count(".") == 3  # any id makes one subject token


def _schedule_at(at: datetime) -> RawStreamMsg:
    return RawStreamMsg(
        subject="cmd.outbound.held.x", seq=9, headers=held_headers(at, NOW, HOLD_HOP, "t")
    )


def test_a_stored_schedule_s_time_reads_back_and_anything_else_has_none() -> None:
    at = NOW + timedelta(minutes=5)
    assert scheduled_at(held_headers(at, NOW, HOLD_HOP, "t")) == at
    assert scheduled_at({}) is None
    assert scheduled_at(None) is None
    assert scheduled_at({"Nats-Schedule": "@every 1m"}) is None
    assert scheduled_at({"Nats-Schedule": "@at yesterday"}) is None


EARLY, LATE = NOW + timedelta(minutes=1), NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("owner", "last", "fires", "may"),
    [
        (7, None, LATE, True),  # its own record: stores
        (7, _schedule_at(EARLY), LATE, True),  # its own record: replaces its stale schedule
        (8, None, EARLY, False),  # another command owns the send (a change replaced this one)
        (8, _schedule_at(LATE), EARLY, False),
        (None, None, LATE, True),  # released, nothing stored: the safety net
        (None, _schedule_at(LATE), EARLY, True),  # released: the copy replaces the original's
        (None, _schedule_at(EARLY), LATE, False),  # released: the original never replaces
        (None, _schedule_at(EARLY), EARLY, False),  # a tie keeps what is stored
    ],
)
def test_a_command_stores_its_schedule_only_where_no_earlier_one_waits(
    owner: int | None, last: RawStreamMsg | None, fires: datetime, may: bool
) -> None:
    assert may_store(owner, 7, last, fires) is may


@pytest.mark.parametrize(
    ("status", "error_code", "said"),
    [
        ("sent", None, "it was sent"),
        ("failed", "cancelled", "it was cancelled"),
        ("failed", "chat_not_found", "it failed (chat_not_found)"),
        ("moved", None, "it was moved on as 'm1~b'"),
    ],
)
def test_a_done_send_is_refused_saying_how_it_ended(
    status: str, error_code: str | None, said: str
) -> None:
    record = Attempt(
        message_id="m1",
        workspace_id="demo",
        channel="telegram",
        account="shop",
        recipient="1",
        status=status,  # type: ignore[arg-type]
        error_code=error_code,
        moved_to="m1~b" if status == "moved" else None,
    )
    refused = refuse_done(record)
    assert refused is not None
    assert (refused.status, refused.reason) == (409, f"the send cannot be changed: {said}")
    assert refuse_done(record.model_copy(update={"status": "queued"})) is None
