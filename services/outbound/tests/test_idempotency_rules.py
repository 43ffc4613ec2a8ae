"""The idempotency decisions as pure functions: what a repeated send command does with the
attempt record under its id (``attempts.verdict``), and what a repeated HTTP request gets
from its ``Idempotency-Key`` (``idempotency.decide``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard.events import decode_message, encode
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import DeliverySent
from switchboard.events.catalog.outbound import OutText, SendBulk, SendMessage
from switchboard.outbound.attempts import Attempt, Verdict, record_key, verdict
from switchboard.outbound.idempotency import (
    Conflict,
    InFlight,
    KeyRecord,
    Replay,
    decide,
    key_of,
)
from switchboard.runtime.fingerprint import fingerprint

from .support import record_of

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
LEASE = timedelta(seconds=30)


def send(text: str = "hi", cls: type[SendMessage] = SendMessage) -> SendMessage:
    return cls(
        message_id="m1",
        channel=Channel.TELEGRAM,
        account="shop",
        recipient="42",
        content=OutText(text=text),
    )


def record(status: str = "queued", owner: int | None = 7, age: timedelta = DAY / 2) -> Attempt:
    return record_of(send(), owner, status=status, created_at=NOW - age)


def test_the_fingerprint_is_the_body_not_its_spelling() -> None:
    same = SendMessage.model_validate(
        {"content": {"text": "hi", "kind": "text"}, "recipient": "42", "account": "shop",
         "channel": "telegram", "message_id": "m1"}
    )  # fmt: skip
    assert fingerprint(same) == fingerprint(send())
    assert fingerprint(send("other")) != fingerprint(send())
    # the bulk lane is another command, even with the same fields
    assert fingerprint(send(cls=SendBulk)) != fingerprint(send())


def test_record_keys_are_per_workspace() -> None:
    assert record_key("demo", "m1") != record_key("other", "m1")
    assert record_key("demo", "m1") == record_key("demo", "m1")
    assert key_of("messages", "demo", "m1") != key_of("messages", "other", "m1")


def test_a_redelivery_of_the_owner_goes_on() -> None:
    assert verdict(record(owner=7), fingerprint(send()), 7, NOW, DAY) is Verdict.PROCEED


def test_a_copy_of_a_pending_command_is_another_owners() -> None:
    # the bug: a retry after the duplicate window while the first waits for not_before
    assert verdict(record(owner=7), fingerprint(send()), 9, NOW, DAY) is Verdict.OTHER_OWNER


def test_a_completed_id_is_done_for_a_copy() -> None:
    for status in ("sent", "failed"):
        assert verdict(record(status), fingerprint(send()), 9, NOW, DAY) is Verdict.DONE


def test_another_body_under_a_taken_id_is_a_conflict_pending_or_done() -> None:
    other = fingerprint(send("changed"))
    for status in ("queued", "retrying", "sent", "failed"):
        assert verdict(record(status), other, 9, NOW, DAY) is Verdict.CONFLICT


def test_an_id_is_free_again_after_the_retention_once_completed() -> None:
    old = record("sent", age=DAY + timedelta(seconds=1))
    assert verdict(old, fingerprint(send("changed")), 9, NOW, DAY) is Verdict.NEW
    # a message still pending is never forgotten, however old
    assert verdict(record("queued", age=3 * DAY), fingerprint(send()), 9, NOW, DAY) is (
        Verdict.OTHER_OWNER
    )


def test_records_from_before_fingerprints_are_not_conflicts() -> None:
    legacy = record(owner=None).model_copy(update={"fingerprint": None})
    assert verdict(legacy, fingerprint(send("x")), 9, NOW, DAY) is Verdict.PROCEED


SEEN = timedelta(seconds=5)  # how long this instance has watched the claim unchanged


def key(state: str, fp: str = "f1", age: timedelta = timedelta(seconds=5)) -> KeyRecord:
    return KeyRecord(
        fingerprint=fp,
        state=state,  # type: ignore[arg-type]
        at=NOW - age,
        status=202 if state == "done" else None,
        body={"message_id": "m1", "status": "accepted"} if state == "done" else None,
    )


def test_a_completed_request_is_answered_again() -> None:
    assert decide(key("done"), "f1", NOW, DAY, LEASE, SEEN) == Replay(
        202, {"message_id": "m1", "status": "accepted"}
    )


def test_another_body_is_a_conflict() -> None:
    assert decide(key("done"), "f2", NOW, DAY, LEASE, SEEN) == Conflict()
    assert decide(key("in_flight"), "f2", NOW, DAY, LEASE, SEEN) == Conflict()


def test_a_request_in_flight_says_when_to_come_back() -> None:
    assert decide(key("in_flight"), "f1", NOW, DAY, LEASE, SEEN) == InFlight(25)
    late = timedelta(seconds=29, milliseconds=900)
    assert decide(key("in_flight"), "f1", NOW, DAY, LEASE, late) == InFlight(1)


def test_a_dead_claim_and_a_forgotten_key_are_taken() -> None:
    assert decide(key("in_flight"), "f2", NOW, DAY, LEASE, LEASE) == "take"
    assert decide(key("done", age=DAY * 2), "f2", NOW, DAY, LEASE, SEEN) == "take"


def test_a_claim_written_by_a_clock_behind_ours_is_not_dead() -> None:
    """The claim's time is the claimant's clock: one an hour behind ours used to make a live
    claim look dead, and the repeat was handled a second time while the first was still in
    flight. Only how long this instance has watched the claim counts."""
    behind = key("in_flight", age=timedelta(hours=1))
    assert decide(behind, "f1", NOW, DAY, LEASE, timedelta(0)) == InFlight(30)
    assert decide(behind, "f1", NOW, DAY, LEASE, LEASE) == "take"


def test_caller_keyed_ids_are_scoped_by_workspace_on_the_wire() -> None:
    def msg_id(workspace: str) -> str:
        return encode(send(), source="t", workspace_id=workspace).headers["Nats-Msg-Id"]

    # B's message_id "m1" is not a JetStream duplicate of A's
    assert msg_id("demo") != msg_id("other")
    assert msg_id("default") == "send:m1"  # the default workspace keeps the bare id
    # the delivery events of B's message follow B's command
    cmd = encode(send(), source="t", workspace_id="other")
    cause = decode_message(cmd.subject, cmd.headers, cmd.body).envelope
    sent = DeliverySent(
        message_id="m1", channel=Channel.TELEGRAM, account="shop", recipient="42", at=NOW,
        provider_message_id="p1",
    )  # fmt: skip
    assert encode(sent, source="t", cause=cause).headers["Nats-Msg-Id"] == "other/ds:m1"
