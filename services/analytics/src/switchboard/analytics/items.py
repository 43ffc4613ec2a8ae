"""Decoded stream messages as the projectors see them.

A message whose type the catalog does not know (a producer deployed ahead of this service,
an MTProto event added later) is still counted by name from its envelope and JSON body; a
known type that does not validate is poison and goes to the DLQ through the projection.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from pydantic import ValidationError

from switchboard.events import Envelope, Message, decode_message
from switchboard.events.codec import DecodeError, parse_type
from switchboard.events.envelope import EnvelopeError, parse_time
from switchboard.events.registry import UnknownMessageError, latest_version, model_for
from switchboard.runtime import pii


@dataclass(frozen=True, slots=True)
class Item:
    """One stream message: its position, when the stream stored it, and what it says."""

    seq: int
    stored_at: datetime
    envelope: Envelope
    name: str
    model: Message | None
    body: dict[str, Any]

    @property
    def workspace(self) -> str:
        return self.envelope.workspace_id

    def time(self, name: str = "at") -> datetime:
        """A timestamp field of the model or body; the envelope's time when there is none."""
        value: Any = getattr(self.model, name, None) if self.model is not None else None
        if value is None:
            value = self.body.get(name)
        if isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return parse_time(value)
            except EnvelopeError:
                pass
        return self.envelope.time

    def field(self, *names: str) -> str:
        """The first of ``names`` present in the model or body, as text ('' when none)."""
        for name in names:
            value = getattr(self.model, name, None) if self.model is not None else None
            if value is None:
                value = self.body.get(name)
            if value is not None and value != "":
                return str(getattr(value, "value", value))
        return ""


def hour_of(at: datetime) -> datetime:
    """The UTC hour an instant falls in (the rollups' finest bucket)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def millis(start: datetime, end: datetime) -> float:
    """Milliseconds from ``start`` to ``end`` (never negative: clocks of two hosts differ)."""
    return max((end - start).total_seconds() * 1000.0, 0.0)


async def prepare(msgs: Sequence[Msg]) -> list[Item]:
    """Open and decode a batch (CPU work the projection overlaps with the previous batch's
    SQL); sealed personal data opens first (``pii.open_messages``)."""
    await pii.open_messages(msgs)
    return [decode(m) for m in msgs]


def decode(msg: Msg) -> Item:
    headers = dict(msg.headers or {})
    meta = msg.metadata
    try:
        envelope = Envelope.from_headers(headers)
        name, version = parse_type(envelope.type)
    except (EnvelopeError, DecodeError) as exc:
        raise DecodeError(f"{msg.subject}: {exc}") from None
    stored_at = meta.timestamp.astimezone(UTC)
    try:
        cls = model_for(name, version)
    except UnknownMessageError:
        body = _json_object(msg.data, msg.subject)
        return Item(meta.sequence.stream, stored_at, envelope, name, None, body)
    model: Message | None = None
    if version == latest_version(name):
        # The envelope is parsed already: validate the body alone (the common case).
        with contextlib.suppress(ValidationError):
            model = cls.model_validate_json(msg.data)
    if model is None:  # an older version to upcast, or invalid (DecodeError says why)
        model = decode_message(msg.subject, headers, msg.data).model
    return Item(meta.sequence.stream, stored_at, envelope, name, model, {})


def _json_object(data: bytes, subject: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise DecodeError(f"body of {subject} is not JSON") from None
    if not isinstance(body, dict):
        raise DecodeError(f"body of {subject} is not a JSON object")
    return body
