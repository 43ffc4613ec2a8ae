"""Reading what a stream holds, for assertions."""

from __future__ import annotations

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.events import Decoded, decode_message
from switchboard.runtime.bus import Bus


async def stream_messages(nats_url: str, stream: str, subject: str = ">") -> list[Decoded]:
    """Every message of ``stream`` (matching ``subject``), decoded, in stream order."""
    bus = await Bus.connect(nats_url, name="test-reader")
    try:
        info = await bus.js.stream_info(stream)
        total = info.state.messages
        sub = await bus.js.pull_subscribe(
            subject if subject != ">" else info.config.subjects[0],  # type: ignore[index]
            durable=None,
            stream=stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                filter_subjects=[subject] if subject != ">" else None,
            ),
        )
        out: list[Decoded] = []
        while len(out) < total:
            try:
                msgs = await sub.fetch(500, timeout=1)
            except NatsTimeout:
                break
            out += [decode_message(m.subject, dict(m.headers or {}), m.data) for m in msgs]
        await sub.unsubscribe()
        return out
    finally:
        await bus.close()


def by_type(decoded: list[Decoded]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in decoded:
        counts[d.model.name] = counts.get(d.model.name, 0) + 1
    return counts


async def stream_count(nats_url: str, stream: str) -> int:
    bus = await Bus.connect(nats_url, name="test-reader")
    try:
        return int((await bus.js.stream_info(stream)).state.messages)
    finally:
        await bus.close()
