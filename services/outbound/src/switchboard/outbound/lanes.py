"""A lane: one durable consumer's commands in this instance, each handled in its own task
as soon as it arrives (no batch barrier), kept alive with in-progress acks while it waits
for a slot or a paused campaign, and put back on the stream at a graceful stop unless its
provider call has started (that one finishes).

The conversational lane (``cmd.outbound.send.>``) and the bulk lane
(``cmd.outbound.bulk_send.>``) are separate durables, so a broadcast queued in the stream
never stands in front of a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.msg import Msg

from switchboard.outbound.puller import Puller
from switchboard.outbound.sender import Phase
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import ConsumerSpec, PermanentError
from switchboard.runtime.dlq import dead_letter_msg
from switchboard.runtime.logging import get_logger
from switchboard.runtime.metrics import CONSUMED, DEAD_LETTERED

log = get_logger(__name__)

Handler = Callable[[Msg, Phase], Awaitable[None]]


@dataclass
class _Held:
    msg: Msg
    since: float
    phase: Phase = field(default_factory=Phase)


@dataclass
class Lane:
    bus: Bus
    spec: ConsumerSpec
    handler: Handler
    capacity: int
    stop: asyncio.Event
    grace: float = 15.0
    held: dict[asyncio.Task[None], _Held] = field(default_factory=dict)
    _puller: Puller | None = None

    async def run(self) -> None:
        halt = asyncio.Event()
        self._puller = Puller(self.bus, self.spec, self._start, self.capacity, halt)
        pulling = asyncio.create_task(self._puller.run(), name=f"pull {self.spec.durable}")
        beat = self.spec.ack_wait_s / 3
        try:
            while not self.stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), beat)
                if pulling.done():
                    pulling.result()  # a crash of the pull loop restarts the lane
                await self._keep_alive(beat)
        finally:
            halt.set()
            with contextlib.suppress(Exception):
                await pulling
            await self._put_back()

    async def _keep_alive(self, older_than: float) -> None:
        now = time.monotonic()
        for held in list(self.held.values()):
            if now - held.since >= older_than:
                with contextlib.suppress(Exception):
                    await held.msg.in_progress()

    async def _put_back(self) -> None:
        """At a stop: what waits goes back to the stream at once; calls in flight finish."""
        for task, held in list(self.held.items()):
            if not held.phase.calling:
                task.cancel()
        if self.held:
            await asyncio.wait(list(self.held), timeout=self.grace)

    def _start(self, msg: Msg) -> None:
        held = _Held(msg, time.monotonic())
        task = asyncio.get_running_loop().create_task(self._one(held))
        self.held[task] = held

    async def _one(self, held: _Held) -> None:
        msg = held.msg
        try:
            deliveries = msg.metadata.num_delivered
            if deliveries > self.spec.max_deliver:
                raise PermanentError(f"gave up after {deliveries - 1} deliveries")
            await self.handler(msg, held.phase)
            CONSUMED.labels(self.spec.durable).inc()
        except asyncio.CancelledError:
            if not held.phase.calling:
                with contextlib.suppress(Exception):
                    await msg.nak()
        except PermanentError as exc:
            await self._dead_letter(msg, str(exc))
        except Exception as exc:
            deliveries = msg.metadata.num_delivered
            if deliveries >= self.spec.max_deliver:
                await self._dead_letter(msg, f"{type(exc).__name__}: {exc}")
            else:
                delay = self.spec.backoff_s[min(deliveries - 1, len(self.spec.backoff_s) - 1)]
                log.warning(
                    "handler failed; will retry",
                    consumer=self.spec.durable,
                    subject=msg.subject,
                    attempt=deliveries,
                    error=str(exc),
                )
                with contextlib.suppress(Exception):
                    await msg.nak(delay=delay)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self.held.pop(task, None)
            if self._puller is not None:
                self._puller.settled()

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        await dead_letter_msg(self.bus, msg, reason=reason, consumer=self.spec.durable)
        await msg.term()  # only after the DLQ stored it: nothing is lost if we crash between
        DEAD_LETTERED.labels(self.spec.durable).inc()
        log.error("dead-lettered", consumer=self.spec.durable, subject=msg.subject, reason=reason)
