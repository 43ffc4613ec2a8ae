"""The normalizer consumer: ``raw.*`` -> ``conv.*``. Each conv event's id is derived from the
RAW id, so a redelivered or replayed payload republishes the same ids (JetStream dedups)."""

from __future__ import annotations

import json
from typing import Any

from nats.aio.msg import Msg

from switchboard.events import Envelope, EnvelopeError, Event
from switchboard.events.envelope import parse_time
from switchboard.events.subjects import untoken
from switchboard.ingest.normalize import telegram
from switchboard.ingest.normalize.base import NormalizeError, Normalizer
from switchboard.ingest.raw import H_RECEIVED_AT
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import ConsumerSpec, PermanentError

NORMALIZERS: dict[str, Normalizer] = {"telegram": telegram.normalize_update}

SPEC = ConsumerSpec(
    stream="RAW", durable="ingest-normalizer", filter_subjects=("raw.>",), batch=128
)


def normalize_raw(
    subject: str, headers: dict[str, str], body: bytes
) -> tuple[Envelope, list[Event]]:
    """Pure: one RAW message to its envelope and conversation events (PermanentError if bad)."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != "raw":
        raise PermanentError(f"subject {subject!r} is not raw.<provider>.v1.<account>")
    provider, account = untoken(parts[1]), untoken(parts[3])
    normalize = NORMALIZERS.get(provider)
    if normalize is None:
        raise PermanentError(f"no normalizer for provider {provider!r}")
    try:
        envelope = Envelope.from_headers(headers)
    except EnvelopeError as exc:
        raise PermanentError(str(exc)) from None
    received = envelope.extra.get(H_RECEIVED_AT)
    received_at = parse_time(received) if received else envelope.time
    try:
        payload: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PermanentError(f"RAW body is not JSON: {exc}") from None
    try:
        events = normalize(payload, account=account, raw_id=envelope.id, received_at=received_at)
    except NormalizeError as exc:
        raise PermanentError(str(exc)) from None
    return envelope, events


async def handle_raw(bus: Bus, msg: Msg) -> None:
    """Normalize one RAW message and publish its events (each awaited) before the ack."""
    envelope, events = normalize_raw(msg.subject, dict(msg.headers or {}), msg.data)
    for event in events:
        await bus.publish(event, cause=envelope)
