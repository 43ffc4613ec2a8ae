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

from switchboard.outbound.sender import Phase
from switchboard.outbound.turns import Turns
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import ConsumerSpec, handle_delivery
from switchboard.runtime.delivery.pull import ContinuousPull
from switchboard.runtime.failures import PoisonBudget
from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import pause

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
    budget: PoisonBudget = field(default_factory=PoisonBudget)
    # Sends to one chat keep the order the lane receives them in (``turns``).
    turns: Turns | None = None
    _puller: ContinuousPull | None = None

    async def run(self) -> None:
        halt = asyncio.Event()
        self._puller = ContinuousPull(
            self.bus, self.spec.stream, self.spec.config(), self._start, self.capacity, halt
        )
        pulling = asyncio.create_task(self._puller.run(), name=f"pull {self.spec.durable}")
        beat = self.spec.ack_wait_s / 3
        try:
            while not self.stop.is_set():
                await pause(self.stop, beat)
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
        if self.turns is not None:
            self.turns.arrive(msg)
        held = _Held(msg, time.monotonic())
        task = asyncio.get_running_loop().create_task(self._one(held))
        self.held[task] = held

    async def _one(self, held: _Held) -> None:
        msg = held.msg

        async def handle(_: Msg) -> bool:
            await self.handler(msg, held.phase)
            return True  # the lane's handlers settle their messages themselves

        try:
            await handle_delivery(self.bus, msg, self.spec, self.budget, handle)
        except asyncio.CancelledError:
            if not held.phase.calling:
                with contextlib.suppress(Exception):
                    await msg.nak()
        finally:
            if self.turns is not None:
                self.turns.leave(msg)
            task = asyncio.current_task()
            if task is not None:
                self.held.pop(task, None)
            if self._puller is not None:
                self._puller.settled()
