"""The event store of the CRM aggregates: append with optimistic concurrency on the
aggregate's subject (JetStream expected-last-subject-sequence over ``crm.*.*.<id>``) and
load an aggregate by reading its subject back."""

from __future__ import annotations

from dataclasses import dataclass

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from switchboard.events import Decoded, Envelope, Message, decode_message
from switchboard.runtime.bus import Bus

WRONG_LAST_SEQUENCE = 10071


class ConflictError(Exception):
    """The aggregate moved since it was read (expected version no longer current)."""

    def __init__(self, aggregate: str, expected: int) -> None:
        super().__init__(f"{aggregate} is no longer at version {expected}")
        self.aggregate = aggregate
        self.expected = expected


def aggregate_filter(aggregate_id: str) -> str:
    return f"crm.*.*.{aggregate_id}"


@dataclass(frozen=True)
class Aggregate:
    """An aggregate's events in order and its version (the stream sequence of the last)."""

    id: str
    events: list[Decoded]
    version: int


class EventStore:
    """Appends to and reads from the CRM stream."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def append(
        self,
        model: Message,
        aggregate_id: str,
        expected: int,
        *,
        cause: Envelope | None = None,
        workspace_id: str = "default",
        id: str | None = None,
    ) -> int:
        """Append if the aggregate is still at ``expected`` (0: must not exist yet)."""
        headers = {
            "Nats-Expected-Last-Subject-Sequence": str(expected),
            "Nats-Expected-Last-Subject-Sequence-Subject": aggregate_filter(aggregate_id),
        }
        try:
            ack = await self.bus.publish(
                model, cause=cause, headers=headers, id=id, workspace_id=workspace_id
            )
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise ConflictError(aggregate_id, expected) from None
            raise
        return int(ack.seq)

    async def load(self, aggregate_id: str) -> Aggregate:
        """Read every event of one aggregate (few per aggregate: a short ordered read)."""
        filt = aggregate_filter(aggregate_id)
        try:
            last = await self.bus.js.get_last_msg("CRM", filt)
        except NotFoundError:
            return Aggregate(aggregate_id, [], 0)
        sub = await self.bus.js.pull_subscribe(
            filt,
            durable=None,
            stream="CRM",
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                mem_storage=True,
                inactive_threshold=5.0,
            ),
        )
        events: list[Decoded] = []
        try:
            while True:
                try:
                    msgs = await sub.fetch(256, timeout=1.0)
                except NatsTimeout:
                    break
                for m in msgs:
                    events.append(decode_message(m.subject, dict(m.headers or {}), m.data))
                if msgs and msgs[-1].metadata.sequence.stream >= (last.seq or 0):
                    break
        finally:
            await sub.unsubscribe()
        return Aggregate(aggregate_id, events, int(last.seq or 0))

    async def last(self, aggregate_id: str) -> Decoded | None:
        """The latest event of an aggregate (a claim has exactly one)."""
        try:
            msg = await self.bus.js.get_last_msg("CRM", aggregate_filter(aggregate_id))
        except NotFoundError:
            return None
        return decode_message(msg.subject or "", dict(msg.headers or {}), msg.data or b"")

    async def first(self, aggregate_id: str) -> Decoded | None:
        """The creating event of an aggregate."""
        try:
            msg = await self.bus.js.get_msg(
                "CRM", seq=1, subject=aggregate_filter(aggregate_id), next=True
            )
        except NotFoundError:
            return None
        return decode_message(msg.subject or "", dict(msg.headers or {}), msg.data or b"")
