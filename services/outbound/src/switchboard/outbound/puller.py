"""A continuous pull from a durable consumer: pull requests stay outstanding, so a command is
handed over the moment it is published, and new ones are requested as soon as the handler
settles earlier ones (at most ``capacity`` unsettled at a time).

Not the runtime's ``PullWorker``: that one fetches a batch and waits for all of it before the
next fetch, so one command waiting seconds for a busy chat would hold back the rest, and an
idle fetch returns only when its batch fills or its timeout ends (up to a second of latency
for a reply). nats-py has no continuous "consume" (nats.go's ``Consume``), so this is the
same protocol: ``$JS.API.CONSUMER.MSG.NEXT`` requests with ``expires`` and idle heartbeats,
counting what each 408/409 status says was not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import ConsumerSpec
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)

EXPIRES_S = 30.0
HEARTBEAT_S = 5.0
# At most this many per request: a thousand commands arriving at once would keep the event
# loop busy long enough to make the sends of that moment late.
MAX_BATCH = 64


@dataclass
class Puller:
    """Delivers messages of ``spec``'s durable to ``deliver``; ``settled()`` frees a place."""

    bus: Bus
    spec: ConsumerSpec
    deliver: Callable[[Msg], None]
    capacity: int
    stop: asyncio.Event
    held: int = 0
    _requested: int = 0
    _heard: float = field(default_factory=time.monotonic)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _reset: bool = False

    def settled(self) -> None:
        """A delivered message was acked, nak'ed or terminated: room for another."""
        self.held -= 1
        self._wake.set()

    async def run(self) -> None:
        await self.bus.js.add_consumer(self.spec.stream, self.spec.config())
        nc = self.bus.nc
        inbox = nc.new_inbox()
        sub: Subscription = await nc.subscribe(inbox, cb=self._on_message)
        request_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.spec.stream}.{self.spec.durable}"
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if self._reset or now - self._heard > 3 * HEARTBEAT_S:
                    # Requests lost (a reconnect, a consumer re-created): ask afresh.
                    if self._requested:
                        log.info("pull requests lost; asking again", consumer=self.spec.durable)
                    self._requested, self._reset, self._heard = 0, False, now
                    with contextlib.suppress(Exception):
                        await self.bus.js.add_consumer(self.spec.stream, self.spec.config())
                free = min(self.capacity - self.held - self._requested, MAX_BATCH)
                enough = min(MAX_BATCH, self.capacity // 8)
                if free > 0 and (self._requested == 0 or free >= enough):
                    body = {
                        "batch": free,
                        "expires": int(EXPIRES_S * 1e9),
                        "idle_heartbeat": int(HEARTBEAT_S * 1e9),
                    }
                    try:
                        await nc.publish(request_subject, orjson.dumps(body), reply=inbox)
                        self._requested += free
                    except Exception as exc:
                        log.warning(
                            "pull request failed", consumer=self.spec.durable, error=str(exc)
                        )
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        self._heard = time.monotonic()
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is None and msg.reply:
            self._requested -= 1
            self.held += 1
            self.deliver(msg)
            return
        if status == "100":
            return  # idle heartbeat: the requests are alive
        pending = headers.get("Nats-Pending-Messages")
        if pending is not None:
            self._requested = max(0, self._requested - int(pending))
        elif status in ("408", "409"):
            self._reset = True  # the server dropped requests without saying how many
            if status == "409":
                log.info(
                    "pull requests ended",
                    consumer=self.spec.durable,
                    reason=headers.get("Description"),
                )
        self._wake.set()
