"""What the normalizer unit tests of every provider check the same way: one event out, a
content dump holding the expected fields, and events that are pure and survive the codec."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from switchboard.events import Event, decode, encode


def only(events: list[Event]) -> Any:
    """The one event of ``events`` (``Any``: each test narrows it to the type it expects)."""
    assert len(events) == 1, events
    return events[0]


def subset(expected: dict[str, Any], actual: dict[str, Any]) -> None:
    """Every key of ``expected`` (recursively) has its value in ``actual``."""
    for key, value in expected.items():
        if isinstance(value, dict):
            subset(value, actual[key])
        else:
            assert actual[key] == value, key


def assert_pure_and_codec_safe(normalize: Callable[[], list[Event]], now: datetime) -> None:
    """The same payload gives the same events, and each one encodes under its deterministic
    id and decodes back to itself."""
    events = normalize()
    assert events == normalize()
    for event in events:
        encoded = encode(event, source="ingest", time=now)
        assert encoded.headers["ce-id"] == event.deterministic_id()
        assert decode(encoded.subject, encoded.headers, encoded.body) == event
