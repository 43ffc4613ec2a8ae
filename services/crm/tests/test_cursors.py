"""Keyset cursors: a cursor resumes a list exactly where its page ended; one this API did
not make for that list is refused as a bad cursor (a 400), never a server error."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from switchboard.crm.queries import BadCursorError, Keyset, encode_cursor, resume_after

BY_TIME_AND_ID = Keyset("c.last_message_at", "c.id")
BY_TIME_AND_SEQ = Keyset("m.sent_at", "m.stream_seq", descending=False, tie_is_int=True)
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_cursor_resumes_at_the_time_and_tie_it_names() -> None:
    assert resume_after(encode_cursor(AT, "cv_1"), BY_TIME_AND_ID) == (AT, "cv_1")
    assert resume_after(encode_cursor(AT, 42), BY_TIME_AND_SEQ) == (AT, 42)


@pytest.mark.parametrize(
    ("cursor", "keys"),
    [
        ("not base64 json!", BY_TIME_AND_ID),
        (encode_cursor(AT), BY_TIME_AND_ID),  # one value, two wanted
        (encode_cursor("yesterday", "cv_1"), BY_TIME_AND_ID),  # not a time
        (encode_cursor(None, "cv_1"), BY_TIME_AND_ID),
        (encode_cursor(AT, "seven"), BY_TIME_AND_SEQ),  # a sequence that is no number
        # nested past Python's stack: the JSON parser's RecursionError was a 500
        (base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode(), BY_TIME_AND_ID),
    ],
    ids=["not-base64", "one-value", "not-a-time", "null-time", "not-a-number", "nested"],
)
def test_a_cursor_this_api_did_not_make_is_a_bad_cursor(cursor: str, keys: Keyset) -> None:
    with pytest.raises(BadCursorError):
        resume_after(cursor, keys)
