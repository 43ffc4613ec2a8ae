"""Reading what a stream holds, for assertions."""

from __future__ import annotations

from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay

from switchboard.events import Decoded, Encoded, decode_message
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus

# What a replicated cluster answers while the machine is saturated: not a fault of what is
# under test, so readers ask again.
# NoStreamResponseError: a JetStream publish while the stream elects a leader
BUSY = (
    NatsTimeout,
    ServiceUnavailableError,
    NoRespondersError,
    NoStreamResponseError,
    TimeoutError,
)


async def stream_messages(nats_url: str, stream: str, subject: str = ">") -> list[Decoded]:
    """Every message of ``stream`` (matching ``subject``), opened (sealed personal data, as
    every consumer opens it) and decoded, in stream order; asks again for up to a minute
    while the cluster is too busy to answer."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(BUSY), stop=stop_after_delay(60), reraise=True
    ):
        with attempt:
            return await _read_stream(nats_url, stream, subject)
    raise AssertionError("unreachable")


async def _read_stream(nats_url: str, stream: str, subject: str) -> list[Decoded]:
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
            async with pii.using(bus):
                await pii.open_messages(msgs)
            out += [decode_message(m.subject, dict(m.headers or {}), m.data) for m in msgs]
        await sub.unsubscribe()
        return out
    finally:
        await bus.close()


async def events_where(nats_url: str, stream: str, **fields: object) -> list[Decoded]:
    """The events of ``stream`` whose fields have these values (``message_id="m-1"``)."""
    return [
        d
        for d in await stream_messages(nats_url, stream)
        if all(getattr(d.model, name, None) == value for name, value in fields.items())
    ]


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


def delivered(enc: Encoded, stream: str, seq: int) -> Msg:
    """``enc`` as a JetStream consumer receives it: stored in ``stream`` at ``seq`` (what
    projections read of a message's metadata: its stream sequence, from the reply subject)."""
    reply = f"$JS.ACK.{stream}.c.1.{seq}.{seq}.0.0"
    return Msg(None, subject=enc.subject, reply=reply, data=enc.body, headers=enc.headers)  # type: ignore[arg-type]


async def keep_only(bus: Bus, stream: str, seconds: float) -> None:
    """Make ``stream`` (or a bucket's ``KV_<name>``) drop a message ``seconds`` after it was
    stored, as its days-long ``max_age`` does in a deployment; its duplicate window, which
    may not be longer, shrinks to a second."""
    config = (await bus.js.stream_info(stream)).config
    config.max_age, config.duplicate_window = seconds, 1.0
    await bus.js.update_stream(config)
