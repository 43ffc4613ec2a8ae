"""Query parameters of the API and the dashboard: time range, bucket size and filters,
checked so that every mistake is answered with a 4xx naming the parameter."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Literal

from switchboard.analytics.errors import AnalyticsServiceError

Bucket = Literal["hour", "day"]
BUCKETS: tuple[Bucket, ...] = ("hour", "day")
FILTERS = ("channel", "account", "provider", "source", "campaign")
WINDOW = ("from", "to", "bucket")
MAX_SPAN = {"hour": timedelta(days=31), "day": timedelta(days=3660)}
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
DEFAULT_SPAN = timedelta(days=7)
MAX_FILTER_LENGTH = 200
_LOST_PLUS = re.compile(r" (\d{2}:?\d{2})$")


class BadParameterError(AnalyticsServiceError, ValueError):
    """A query parameter that cannot be used; answered 400 naming ``parameter``."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Window:
    """A half-open range ``[start, end)`` of whole hours, cut into buckets."""

    start: datetime
    end: datetime
    bucket: Bucket

    def buckets(self) -> list[datetime]:
        """Every bucket start in the window (charts show empty buckets too)."""
        out, at = [], floor(self.start, self.bucket)
        while at < self.end:
            out.append(at)
            at += STEP[self.bucket]
        return out

    def to_json(self) -> dict[str, str]:
        return {"from": iso(self.start), "to": iso(self.end), "bucket": self.bucket}


@dataclass(frozen=True)
class Filters:
    channel: str | None = None
    account: str | None = None
    provider: str | None = None
    source: str | None = None
    campaign: str | None = None

    def given(self) -> dict[str, str]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def floor(at: datetime, bucket: Bucket) -> datetime:
    at = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if bucket == "day" else at


def _ceil_hour(at: datetime) -> datetime:
    down = floor(at, "hour")
    return down if down == at else down + timedelta(hours=1)


def parse_time(name: str, raw: str) -> datetime:
    """ISO 8601 (``2026-11-20T09:00:00Z``, an offset, or a plain date); naive is UTC."""
    # An unescaped "+" in a query string arrives as a space: "...T09:00:00 02:00".
    text = _LOST_PLUS.sub(r"+\1", raw.strip())
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadParameterError(
            name, f"{name}={raw!r} is not an ISO 8601 time such as 2026-11-20T09:00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_window(
    raw_from: str | None, raw_to: str | None, raw_bucket: str | None, now: datetime
) -> Window:
    """The window asked for; defaults: the last 7 days, hourly buckets. Ends are rounded
    out to whole hours (the finest rollup)."""
    bucket = raw_bucket or "hour"
    if bucket not in BUCKETS:
        raise BadParameterError("bucket", f"bucket={bucket!r} is not one of hour, day")
    end = _ceil_hour(parse_time("to", raw_to) if raw_to else now)
    start = floor(parse_time("from", raw_from), "hour") if raw_from else end - DEFAULT_SPAN
    if start >= end:
        raise BadParameterError("from", f"from ({iso(start)}) must be before to ({iso(end)})")
    span = MAX_SPAN[bucket]
    if end - start > span:
        raise BadParameterError(
            "bucket",
            f"{bucket}ly buckets cover at most {span.days} days; "
            f"narrow from/to or use a larger bucket",
        )
    return Window(start, end, bucket)


def parse_filters(
    query: Mapping[str, str], allowed: Iterable[str], extra: Iterable[str] = ()
) -> Filters:
    """The filters given, refusing those this view cannot apply and unknown parameters
    (``extra`` names the view's other parameters)."""
    allowed, extra = tuple(allowed), tuple(extra)
    values: dict[str, str] = {}
    for name, value in query.items():
        if name in WINDOW or name in extra:
            continue
        if name not in FILTERS:
            known = ", ".join(WINDOW + allowed + extra)
            raise BadParameterError(name, f"unknown parameter {name!r}; known: {known}")
        if name not in allowed:
            raise BadParameterError(
                name, f"filter {name!r} does not apply here; use {', '.join(allowed) or 'none'}"
            )
        if not value.strip() or len(value) > MAX_FILTER_LENGTH:
            raise BadParameterError(name, f"{name} must be 1 to {MAX_FILTER_LENGTH} characters")
        values[name] = value.strip()
    return Filters(**values)


def limit_of(raw: str | None, default: int = 100, most: int = 500) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise BadParameterError("limit", f"limit must be a whole number from 1 to {most}")
    return int(raw)
