"""Durable pull consumers with bounded retries and a DLQ.

A hand-written loop rather than FastStream's subscriber: the services need the JetStream
metadata (stream sequence, delivery count) to decide between nak-with-backoff and the DLQ,
batch fetches, and a graceful stop that finishes in-flight work before draining.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from switchboard.events import Decoded, DecodeError, decode_message
from switchboard.runtime.bus import Bus
from switchboard.runtime.dlq import dead_letter_msg
from switchboard.runtime.logging import get_logger
from switchboard.runtime.metrics import CONSUMED, DEAD_LETTERED
from switchboard.runtime.tracing import consume_span

log = get_logger(__name__)


class PermanentError(Exception):
    """Processing can never succeed (malformed input): dead-letter at once, no retries."""


def decode_or_reject(msg: Msg) -> Decoded:
    """Decode a delivered event; one that does not decode never will (PermanentError)."""
    try:
        return decode_message(msg.subject, dict(msg.headers or {}), msg.data)
    except ValueError as exc:
        raise PermanentError(str(exc)) from None


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable consumer shared by every instance of a service (they split the work)."""

    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    max_deliver: int = 5
    ack_wait_s: float = 30.0
    backoff_s: tuple[float, ...] = (0.5, 2.0, 5.0, 15.0)
    batch: int = 64
    max_ack_pending: int = 4096
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=self.max_deliver + 1,  # the last delivery only dead-letters
            max_ack_pending=self.max_ack_pending,
            filter_subjects=list(self.filter_subjects),
            deliver_policy=self.deliver_policy,
        )


# A handler may settle the message itself (ack, nak with its own delay, term) and return
# True; otherwise the worker acks it when the handler returns.
Handler = Callable[[Msg], Awaitable[bool | None]]


@dataclass
class PullWorker:
    """Fetches batches and hands each message to ``handler``; acks, naks or dead-letters."""

    bus: Bus
    spec: ConsumerSpec
    handler: Handler
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    concurrency: int = 16
    idle_polls: int = 0

    async def run(self) -> None:
        sub = await self._subscribe()
        sem = asyncio.Semaphore(self.concurrency)
        while not self.stop.is_set():
            try:
                msgs = await sub.fetch(self.spec.batch, timeout=1.0)
            except TimeoutError:  # nats-py raises its own or asyncio's: both mean idle
                self.idle_polls += 1
                continue
            except NotFoundError:
                sub = await self._subscribe()  # consumer lost (e.g. server state reset)
                continue
            except Exception as exc:
                if self.stop.is_set():
                    break
                log.warning("fetch failed", consumer=self.spec.durable, error=str(exc))
                await asyncio.sleep(0.5)
                continue
            # Messages of a batch run concurrently but the batch finishes before the next
            # fetch, so a stop never abandons work in the middle.
            await asyncio.gather(*(self._one(m, sem) for m in msgs))
        await sub.unsubscribe()

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        await self.bus.js.add_consumer(self.spec.stream, self.spec.config())
        return await self.bus.js.pull_subscribe_bind(
            durable=self.spec.durable, stream=self.spec.stream
        )

    async def _one(self, msg: Msg, sem: asyncio.Semaphore) -> None:
        async with sem:
            meta = msg.metadata
            deliveries = meta.num_delivered
            try:
                if deliveries > self.spec.max_deliver:
                    raise PermanentError(f"gave up after {deliveries - 1} deliveries")
                with consume_span(
                    f"consume {self.spec.durable}",
                    msg.headers,
                    **{"messaging.destination": msg.subject},
                ):
                    settled = await self.handler(msg)
            except (PermanentError, DecodeError) as exc:
                # A message that does not decode never will: no retries, no backoff.
                await self._dead_letter(msg, str(exc))
                return
            except Exception as exc:
                if deliveries >= self.spec.max_deliver:
                    await self._dead_letter(msg, f"{type(exc).__name__}: {exc}")
                    return
                delay = self.spec.backoff_s[min(deliveries - 1, len(self.spec.backoff_s) - 1)]
                log.warning(
                    "handler failed; will retry",
                    consumer=self.spec.durable,
                    subject=msg.subject,
                    attempt=deliveries,
                    error=str(exc),
                )
                await msg.nak(delay=delay)
                return
            if not settled:
                await msg.ack()
            CONSUMED.labels(self.spec.durable).inc()

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        await dead_letter_msg(self.bus, msg, reason=reason, consumer=self.spec.durable)
        # Acknowledge only after the DLQ has stored it: nothing is lost if we crash between.
        await msg.term()
        DEAD_LETTERED.labels(self.spec.durable).inc()
        log.error("dead-lettered", consumer=self.spec.durable, subject=msg.subject, reason=reason)
