"""Durable pull consumers: content failures get bounded retries and then the DLQ,
infrastructure failures are retried for as long as they last (``failures.decide``).

Every durable settles through :func:`handle_delivery`, whichever reader delivered it:
FastStream's pull subscriber (``switchboard.runtime.subscribers``, the default), an
outbound lane, or :class:`PullWorker`, the runtime's own batch reader on
:class:`switchboard.runtime.delivery.pull.BatchPull`, kept for a hot path declared with
``reader="batch_pull"`` (the ingest normalizer; docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.events import Decoded, decode_message
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import BatchPull
from switchboard.runtime.dlq import dead_letter_msg
from switchboard.runtime.failures import (
    DeadLetter,
    Outcome,
    PermanentError,
    PoisonBudget,
    Retry,
    RetryPolicy,
    decide,
)
from switchboard.runtime.logging import get_logger
from switchboard.runtime.metrics import CONSUMED, DEAD_LETTERED
from switchboard.runtime.periodic import pause
from switchboard.runtime.tracing import consume_span

log = get_logger(__name__)


__all__ = [
    "ConsumerSpec",
    "PermanentError",
    "PullWorker",
    "decode_or_reject",
    "handle_delivery",
    "settle_failure",
]


def decode_or_reject(msg: Msg) -> Decoded:
    """Decode a delivered event; one that does not decode never will (PermanentError)."""
    try:
        return decode_message(msg.subject, dict(msg.headers or {}), msg.data)
    except ValueError as exc:
        raise PermanentError(str(exc)) from None


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable consumer shared by every instance of a service (they split the work).

    ``max_deliver`` is the message's budget of content failures; the server itself
    redelivers without limit (an outage must not use up a message's deliveries)."""

    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    max_deliver: int = 5
    ack_wait_s: float = 30.0
    backoff_s: tuple[float, ...] = (0.5, 2.0, 5.0, 15.0)
    batch: int = 64
    max_ack_pending: int = 4096
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    infra_backoff_s: float = 0.5
    infra_backoff_cap_s: float = 15.0

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_deliver,
            backoff_s=self.backoff_s,
            infra_base_s=self.infra_backoff_s,
            infra_cap_s=self.infra_backoff_cap_s,
        )

    def config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=-1,  # counted by PoisonBudget: only content failures count
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
    budget: PoisonBudget = field(default_factory=PoisonBudget)

    async def run(self) -> None:
        # No batch barrier: a message is fetched as soon as a place is free, so one slow
        # message never holds back the ones that arrive behind it (with the barrier, each
        # waited for the whole batch before its own was fetched: a queue at a steady rate).
        # Only as many as there are free places are taken, from requests of a whole batch:
        # asking the server for just the free places made a request per message or two
        # (bench_subscribers: 29.2k -> 18.8k msgs/s). A stop lets those running finish and
        # hands back what was buffered.
        running: set[asyncio.Task[None]] = set()
        pull: BatchPull | None = None
        try:
            while not self.stop.is_set():
                free = self.concurrency - len(running)
                if free <= 0:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    if pull is None:
                        pull = await BatchPull(
                            self.bus, self.spec.stream, self.spec.config()
                        ).start()
                    msgs = await pull.fetch(self.spec.batch, timeout=1.0, at_most=free)
                except TimeoutError:  # nothing came (or the bus did not answer): idle
                    self.idle_polls += 1
                    continue
                except Exception as exc:
                    if self.stop.is_set():
                        break
                    # The consumer went away or the bus failed: subscribe afresh (which
                    # re-creates the durable) after a pause.
                    log.warning("fetch failed", consumer=self.spec.durable, error=str(exc))
                    if pull is not None:
                        await pull.close(nak_buffered=True)
                        pull = None
                    await pause(self.stop, 0.5)
                    continue
                for msg in msgs:
                    task = asyncio.create_task(self._one(msg))
                    running.add(task)
                    task.add_done_callback(self._settled(running))
        finally:
            if running:  # a stop never abandons work in the middle
                await asyncio.gather(*running, return_exceptions=True)
            if pull is not None:
                await pull.close(nak_buffered=True)

    async def _one(self, msg: Msg) -> None:
        await handle_delivery(self.bus, msg, self.spec, self.budget, self._traced)

    def _settled(self, running: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            running.discard(task)
            if not task.cancelled() and (exc := task.exception()) is not None:
                # Settling itself failed (the ack's connection went away): the server
                # delivers the message again after its ack wait.
                log.warning("settling failed", consumer=self.spec.durable, error=repr(exc))

        return done

    async def _traced(self, msg: Msg) -> bool | None:
        with consume_span(
            f"consume {self.spec.durable}", msg.headers, **{"messaging.destination": msg.subject}
        ):
            return await self.handler(msg)


async def handle_delivery(
    bus: Bus, msg: Msg, spec: ConsumerSpec, budget: PoisonBudget, handler: Handler
) -> Outcome | None:
    """Run ``handler`` on one delivered message under the failure policy: ack it when the
    handler returns (unless it settled the message itself and said so), else carry out
    ``decide``'s outcome, and return it (None: handled). Every durable consumer (workers
    and lanes) settles through here."""
    seq = msg.metadata.sequence.stream
    policy = spec.policy
    if budget.spent(seq, policy):
        # Its budget was spent but the DLQ publish failed: only dead-letter it now.
        spent = DeadLetter(budget.last_reason(seq), budget.failures(seq))
        await settle_failure(bus, msg, spent, spec, budget)
        return spent
    try:
        settled = await handler(msg)
    except Exception as exc:
        outcome = decide(
            exc, failures=budget.failures(seq), deliveries=msg.metadata.num_delivered, policy=policy
        )
        await settle_failure(bus, msg, outcome, spec, budget)
        return outcome
    budget.forget(seq)
    if not settled:
        await msg.ack()
    CONSUMED.labels(spec.durable).inc()
    return None


async def settle_failure(
    bus: Bus,
    msg: Msg,
    outcome: Retry | DeadLetter,
    spec: ConsumerSpec,
    budget: PoisonBudget,
) -> None:
    """Carry out ``decide``'s outcome for a delivered message: nak it with the delay, or
    store it in the DLQ and then terminate it. A DLQ publish that fails naks it instead
    (it stays on its stream, marked spent, and the next delivery only dead-letters it)."""
    seq = msg.metadata.sequence.stream
    if isinstance(outcome, Retry):
        if outcome.counted:
            budget.record(seq, budget.failures(seq) + 1, outcome.reason)
        log.warning(
            "handler failed; will retry",
            consumer=spec.durable,
            subject=msg.subject,
            counted=outcome.counted,
            failures=budget.failures(seq),
            delay=outcome.delay_s,
            error=outcome.reason,
        )
        with contextlib.suppress(Exception):  # unsettled, it comes back after ack_wait
            await msg.nak(delay=outcome.delay_s)
        return
    budget.record(seq, max(outcome.attempts, spec.max_deliver), outcome.reason)
    try:
        await dead_letter_msg(bus, msg, reason=outcome.reason, consumer=spec.durable)
    except Exception as exc:
        delay = spec.policy.infra_delay(msg.metadata.num_delivered)
        log.warning(
            "dead-letter publish failed; message stays on its stream",
            consumer=spec.durable,
            subject=msg.subject,
            error=repr(exc),
            delay=delay,
        )
        with contextlib.suppress(Exception):
            await msg.nak(delay=delay)
        return
    budget.forget(seq)
    # Terminated only after the DLQ stored it: nothing is lost if we crash between.
    with contextlib.suppress(Exception):
        await msg.term()
    DEAD_LETTERED.labels(spec.durable).inc()
    log.error("dead-lettered", consumer=spec.durable, subject=msg.subject, reason=outcome.reason)
