"""What every provider normalizer shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from switchboard.events import Event


class NormalizeError(ValueError):
    """The payload is not one this provider's normalizer can read (it goes to the DLQ)."""


class Normalizer(Protocol):
    """A pure function from one verified provider payload to conversation/delivery events."""

    def __call__(
        self, payload: Any, /, *, account: str, raw_id: str, received_at: datetime
    ) -> list[Event]: ...
