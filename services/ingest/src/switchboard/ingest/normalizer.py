"""The normalizer consumer: ``raw.*`` -> ``conv.*``. Each conv event's id is derived from the
RAW id, so a redelivered or replayed payload republishes the same ids (JetStream dedups)."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from nats.aio.msg import Msg
from nats.js.kv import KeyValue
from prometheus_client import Counter

from switchboard.events import Envelope, EnvelopeError, Event
from switchboard.events.envelope import parse_time
from switchboard.events.subjects import untoken
from switchboard.ingest.normalize import generic, telegram, viber, whatsapp
from switchboard.ingest.normalize.base import NormalizeError, Normalizer
from switchboard.ingest.raw import H_RECEIVED_AT
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError
from switchboard.runtime.published import claim, release
from switchboard.runtime.subscribers import Subscription, durable

NORMALIZERS: dict[str, Normalizer] = {
    "telegram": telegram.normalize_update,
    "whatsapp": whatsapp.normalize_payload,
    "viber": viber.normalize_payload,
    "generic": generic.normalize_payload,
}

DUPLICATES = Counter(
    "switchboard_ingest_duplicates_total", "Events not republished: already seen", ["event"]
)
# Where it reads is the topology's (switchboard.events.topology, INGEST). Every inbound
# message passes here: on the runtime's batch reader (consumer.PullWorker), which
# docs/benchmarks.md compares with FastStream's pull subscriber.
SUBSCRIPTION = Subscription(durable("ingest", "ingest-normalizer"), reader="batch_pull", batch=128)
SUBSCRIPTIONS = (SUBSCRIPTION,)
SPEC = SUBSCRIPTION.spec


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
        # orjson: what the webhook parsed the body with before storing it (and ~4x faster)
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(f"RAW body is not JSON: {exc}") from None
    try:
        events = normalize(payload, account=account, raw_id=envelope.id, received_at=received_at)
    except NormalizeError as exc:
        raise PermanentError(str(exc)) from None
    return envelope, events


async def handle_raw(bus: Bus, dedup: KeyValue, msg: Msg, keys: pii.PiiKeys) -> None:
    """Normalize one RAW message and publish its events (each awaited) before the ack.

    Two lines of dedup: JetStream drops a republished id inside the stream's duplicate
    window; beyond it (a provider retrying hours later, stored in RAW again) the ``dedup``
    bucket remembers every id published. Each event is claimed there before its publish,
    in one round trip (``published.claim``; a read before and a mark after took two, and
    each costs the process CPU: bench_ingest). The claim is this RAW message's (its
    stream sequence): its redelivery publishes again, which the window absorbs, while a
    later copy of the payload finds the claim and skips. A publish that fails releases
    its claim, so the event is never left claimed but unpublished for a later copy.

    Events go out sealed (``pii.publish_sealed``): the person's ids, names, texts and media
    references are encrypted with their data key, and the event id names no chat.
    """
    envelope, events = normalize_raw(msg.subject, dict(msg.headers or {}), msg.data)
    owner = f"RAW:{msg.metadata.sequence.stream}"
    for event in events:
        natural = event.deterministic_id()
        event_id = pii.event_id(envelope.workspace_id, natural) if natural else None
        if event_id is not None and not await claim(dedup, event_id, owner):
            DUPLICATES.labels(event.name).inc()
            continue
        try:
            await pii.publish_sealed(bus, event, cause=envelope, keys=keys)
        except Exception:
            if event_id is not None:
                # Best effort: if the bus is down the release fails too, and the message
                # comes back to its owner (this one), which still publishes it. (Cancelled,
                # the claim stays: the redelivery is the same owner.)
                with contextlib.suppress(Exception):
                    await release(dedup, event_id)
            raise
