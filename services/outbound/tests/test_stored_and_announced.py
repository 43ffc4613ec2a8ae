"""The record of a provider's act is stored however long our infrastructure fails, and only
then is a failed announcement raised (the redelivery announces again from the record and
must not find it missing, or it calls the provider again)."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest

from switchboard.outbound.attempts import Attempt
from switchboard.outbound.outcomes import stored_and_announced


class FlakyRecords:
    """``Attempts.put`` failing ``failures`` times with ``error`` first."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.left, self.error = failures, error
        self.stored: list[Attempt] = []
        self.tries = 0

    async def put(self, record: Attempt) -> None:
        self.tries += 1
        if self.left:
            self.left -= 1
            raise self.error
        self.stored.append(record)


RECORD = Attempt(
    message_id="m-1", workspace_id="demo", channel="telegram", account="bot", recipient="42"
)


async def announced() -> None:
    return None


async def announcement_failed() -> None:
    raise nats.errors.TimeoutError


async def test_a_record_our_infrastructure_refuses_is_stored_once_it_is_back() -> None:
    records = FlakyRecords(3, nats.errors.TimeoutError())
    await stored_and_announced(records, RECORD, announced())  # type: ignore[arg-type]
    assert (records.tries, records.stored) == (4, [RECORD])


async def test_a_failed_announcement_is_raised_only_once_the_record_is_stored() -> None:
    records = FlakyRecords(2, ConnectionRefusedError())
    with pytest.raises(nats.errors.TimeoutError):
        await stored_and_announced(records, RECORD, announcement_failed())  # type: ignore[arg-type]
    assert records.stored == [RECORD]


async def test_a_record_refused_for_its_content_is_not_tried_again() -> None:
    records = FlakyRecords(1, ValueError("does not encode"))
    with pytest.raises(ValueError, match="does not encode"):
        await stored_and_announced(records, RECORD, announced())  # type: ignore[arg-type]
    assert (records.tries, records.stored) == (1, [])


async def test_a_cancel_during_the_store_is_not_tried_again() -> None:
    """A cancel raised while a timeout was being handled has that timeout as its context;
    it still ends the store at once (a stop must not wait on a retry loop)."""

    class CancelledInATimeout(FlakyRecords):
        async def put(self, record: Attempt) -> None:
            self.tries += 1
            try:
                raise TimeoutError
            except TimeoutError:
                raise asyncio.CancelledError from None

    records = CancelledInATimeout(0, RuntimeError())
    with pytest.raises(asyncio.CancelledError):
        await stored_and_announced(records, RECORD, announced())  # type: ignore[arg-type]
    assert records.tries == 1
