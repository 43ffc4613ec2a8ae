"""What the normalizer unit tests of every provider check the same way: one event out, a
content dump holding the expected fields, a refusal naming its reason, and events that are
pure and survive the codec."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from switchboard.events import Event, decode, encode
from switchboard.ingest.normalize.base import NormalizeError


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


@dataclass(frozen=True)
class Normalizer:
    """A provider's normalize function called as ingest calls it: for ``account``, with
    ``raw_id`` (unless a test names another) and received at ``received_at``."""

    normalize: Callable[..., list[Event]]
    raw_id: str
    received_at: datetime
    account: str = "demo"

    def __call__(self, payload: Any, raw_id: str | None = None) -> list[Event]:
        return self.normalize(
            payload,
            account=self.account,
            raw_id=self.raw_id if raw_id is None else raw_id,
            received_at=self.received_at,
        )

    def one(self, payload: Any) -> Any:
        """The one event of ``payload`` (see ``only``)."""
        return only(self(payload))

    def refuses(self, payload: Any, reason: str) -> None:
        """``payload`` is refused with a NormalizeError whose message holds ``reason``."""
        with pytest.raises(NormalizeError, match=re.escape(reason)):
            self(payload)

    def is_pure_and_codec_safe(self, payload: Any) -> None:
        assert_pure_and_codec_safe(lambda: self(payload), self.received_at)
