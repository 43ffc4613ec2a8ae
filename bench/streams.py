"""Reading back what a benchmark's run stored in a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.runtime.bus import Bus


async def batches(
    bus: Bus, stream: str, subject: str = ">", batch: int = 1024
) -> AsyncIterator[list[Msg]]:
    """Every message of ``stream`` on ``subject``, in fetched batches, through an ephemeral
    ack-less consumer; it ends when a fetch finds nothing more within a second."""
    sub = await bus.js.pull_subscribe(
        subject, durable=None, stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )  # fmt: skip
    try:
        while True:
            try:
                msgs = await sub.fetch(batch, timeout=1)
            except Exception:
                return
            yield msgs
    finally:
        await sub.unsubscribe()
