"""The CAPI fake's world: pixels with their access tokens, and every event received.

Deduplication is bookkeeping only, as Meta does it for the pixel: an event whose
(pixel, event_name, event_id) was first seen less than `dedup_window` seconds earlier (on
the sandbox clock) is marked a duplicate; later it counts as new again and restarts the
window. Test events (sent with `test_event_code`) are kept apart and deduplicated apart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from switchboard.sandbox.metacapi.config import MetaCapiConfig
from switchboard.sandbox.provider import Core

DedupKey = tuple[str, str, str, str]


@dataclass
class Pixel:
    """A pixel (dataset) and the access tokens allowed to post events to it."""

    id: str
    tokens: set[str] = field(default_factory=set)

    def summary(self) -> dict[str, Any]:
        return {"pixel_id": self.id, "access_tokens": sorted(self.tokens)}


@dataclass(frozen=True)
class CapiEvent:
    """One received event with its bookkeeping."""

    seq: int
    pixel_id: str
    version: str | None
    event_name: str
    event_id: str | None
    event_time: int
    action_source: str
    received_at: float
    duplicate: bool
    test_event_code: str | None
    fbtrace_id: str
    event: dict[str, Any]

    def to_json(self, include_event: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq,
            "pixel_id": self.pixel_id,
            "version": self.version,
            "event_name": self.event_name,
            "event_id": self.event_id,
            "event_time": self.event_time,
            "action_source": self.action_source,
            "received_at": self.received_at,
            "duplicate": self.duplicate,
            "test_event_code": self.test_event_code,
            "fbtrace_id": self.fbtrace_id,
        }
        if include_event:
            out["event"] = self.event
        return out


@dataclass(frozen=True)
class EventCounts:
    """How many events were received, how many were new and how many were duplicates."""

    received: int
    unique: int
    duplicates: int

    def to_json(self) -> dict[str, int]:
        return {"received": self.received, "unique": self.unique, "duplicates": self.duplicates}


@dataclass(frozen=True)
class Batch:
    """One accepted request, as it is recorded."""

    pixel_id: str
    version: str | None
    test_event_code: str | None
    fbtrace_id: str
    events: list[dict[str, Any]]


class MetaCapiState:
    """Pixels, tokens (live and expired), received events and the dedup table."""

    def __init__(self, core: Core, config: MetaCapiConfig) -> None:
        self.core = core
        self.config = config
        self.pixels: dict[str, Pixel] = {}
        self.expired: dict[str, float] = {}
        self.events: list[CapiEvent] = []
        self.test_events: list[CapiEvent] = []
        self._first_seen: dict[DedupKey, float] = {}
        self._seq = itertools.count(1)

    def add_pixel(self, pixel_id: str, tokens: list[str]) -> Pixel:
        if not str(pixel_id).isdigit():
            raise ValueError("a pixel id is a number")
        pixel = self.pixels.setdefault(str(pixel_id), Pixel(str(pixel_id)))
        for token in tokens:
            if not token:
                raise ValueError("an access token cannot be empty")
            pixel.tokens.add(token)
            self.expired.pop(token, None)
        return pixel

    def knows_token(self, token: str) -> bool:
        return any(token in pixel.tokens for pixel in self.pixels.values())

    def expire_token(self, token: str) -> None:
        """Make a known token answer Graph's "session has expired" error from now on."""
        if not self.knows_token(token):
            raise KeyError(f"unknown access token {token!r}")
        self.expired[token] = self.core.clock.time()

    def record(self, batch: Batch) -> list[CapiEvent]:
        """Store an accepted batch; marks duplicates within the dedup window."""
        now = self.core.clock.time()
        stream = self.test_events if batch.test_event_code else self.events
        stored = []
        for event in batch.events:
            raw_id = event.get("event_id")
            event_id = None if raw_id is None else str(raw_id)
            name = str(event["event_name"])
            record = CapiEvent(
                seq=next(self._seq),
                pixel_id=batch.pixel_id,
                version=batch.version,
                event_name=name,
                event_id=event_id,
                event_time=int(event["event_time"]),
                action_source=str(event["action_source"]),
                received_at=now,
                duplicate=self._is_duplicate(batch, name, event_id, now),
                test_event_code=batch.test_event_code,
                fbtrace_id=batch.fbtrace_id,
                event=event,
            )
            stream.append(record)
            stored.append(record)
        return stored

    def _is_duplicate(self, batch: Batch, name: str, event_id: str | None, now: float) -> bool:
        if event_id is None:
            return False
        key = (batch.test_event_code or "", batch.pixel_id, name, event_id)
        first = self._first_seen.get(key)
        if first is not None and now - first <= self.config.dedup_window:
            return True
        self._first_seen[key] = now
        return False

    def clear_events(self) -> None:
        self.events.clear()
        self.test_events.clear()
        self._first_seen.clear()

    def clear(self) -> None:
        self.pixels.clear()
        self.expired.clear()
        self.clear_events()
