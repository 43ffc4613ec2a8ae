"""Delivery events' message ids: one per outcome, so JetStream's duplicate window drops a
publication made twice and never a distinct outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import DeliveryRetrying

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _retrying(attempt: int, code: str, retry_at: datetime) -> DeliveryRetrying:
    return DeliveryRetrying(
        message_id="m-1",
        channel=Channel.TELEGRAM,
        account="shop",
        recipient="42",
        at=T0,
        attempt=attempt,
        reason="Too Many Requests",
        error_code=code,
        retry_at=retry_at,
    )


def test_two_rate_limited_retries_of_one_attempt_are_two_events() -> None:
    # a 429 is not counted as an attempt: the second one in a row has the same attempt
    # and the same error, and was dropped as a copy of the first
    first = _retrying(1, "rate_limited", T0 + timedelta(seconds=1))
    second = _retrying(1, "rate_limited", T0 + timedelta(seconds=3))
    assert first.deterministic_id() != second.deterministic_id()


def test_a_flood_wait_after_a_timeout_is_another_event() -> None:
    timeout = _retrying(1, "gateway_timeout", T0 + timedelta(seconds=2))
    flood = _retrying(1, "FLOOD_WAIT", T0 + timedelta(seconds=2))
    assert timeout.deterministic_id() != flood.deterministic_id()


def test_the_same_retry_published_again_keeps_its_id() -> None:
    at = T0 + timedelta(seconds=1, microseconds=250)
    assert _retrying(2, "rate_limited", at).deterministic_id() == (
        _retrying(2, "rate_limited", at).deterministic_id()
    )
