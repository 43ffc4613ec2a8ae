"""Query parameters: defaults, rounding to whole hours, and a precise error for each mistake."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from switchboard.analytics.params import (
    BadParameterError,
    limit_of,
    parse_filters,
    parse_window,
)

NOW = datetime(2026, 11, 21, 7, 26, 5, tzinfo=UTC)


def test_default_window_is_the_last_seven_days_in_whole_hours() -> None:
    w = parse_window(None, None, None, NOW)
    assert (w.start, w.end, w.bucket) == (
        datetime(2026, 11, 14, 8, tzinfo=UTC),
        datetime(2026, 11, 21, 8, tzinfo=UTC),
        "hour",
    )
    assert len(w.buckets()) == 7 * 24


def test_ends_round_out_and_days_cover_partial_days() -> None:
    w = parse_window("2026-11-20T09:30:00+02:00", "2026-11-20T10:00:01Z", "day", NOW)
    assert (w.start, w.end) == (
        datetime(2026, 11, 20, 7, tzinfo=UTC),
        datetime(2026, 11, 20, 11, tzinfo=UTC),
    )
    assert w.buckets() == [datetime(2026, 11, 20, tzinfo=UTC)]
    # a "+" that a query string turned into a space still reads as an offset
    assert parse_window("2026-11-20T09:00:00 02:00", None, None, NOW).start.hour == 7
    assert parse_window("2026-11-20", None, None, NOW).start == datetime(2026, 11, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("args", "parameter", "words"),
    [
        (("yesterday", None, None), "from", "ISO 8601"),
        ((None, "soon", None), "to", "ISO 8601"),
        (("2026-11-21", "2026-11-20", None), "from", "before"),
        ((None, None, "week"), "bucket", "hour, day"),
        (("2026-01-01", "2026-03-01", "hour"), "bucket", "31 days"),
    ],
)
def test_bad_windows_name_the_parameter(
    args: tuple[str | None, str | None, str | None], parameter: str, words: str
) -> None:
    with pytest.raises(BadParameterError) as caught:
        parse_window(*args, NOW)
    assert caught.value.parameter == parameter
    assert words in caught.value.message


def test_filters_refuse_unknown_and_inapplicable_names() -> None:
    f = parse_filters(
        {"channel": " telegram ", "from": "x", "limit": "5"}, ("channel",), ("limit",)
    )
    assert f.given() == {"channel": "telegram"}
    with pytest.raises(BadParameterError, match="unknown parameter 'chanel'"):
        parse_filters({"chanel": "telegram"}, ("channel",))
    with pytest.raises(BadParameterError, match="does not apply here; use channel"):
        parse_filters({"source": "telegram"}, ("channel",))
    with pytest.raises(BadParameterError, match="1 to 200 characters"):
        parse_filters({"channel": " "}, ("channel",))


def test_limit() -> None:
    assert limit_of(None) == 100
    assert limit_of("7") == 7
    for bad in ("0", "501", "-1", "x"):
        with pytest.raises(BadParameterError):
            limit_of(bad)
