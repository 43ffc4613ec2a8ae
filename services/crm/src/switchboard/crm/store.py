"""The event store of the CRM aggregates: append with optimistic concurrency on the
aggregate's subject (JetStream expected-last-subject-sequence over ``crm.*.*.<id>``) and
load an aggregate by reading its subject back."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

from nats.js.api import RawStreamMsg

from switchboard.crm.errors import CrmServiceError
from switchboard.events import Decoded, Envelope, Message
from switchboard.runtime import pii
from switchboard.runtime.aggregates import ConflictError as ConflictError
from switchboard.runtime.aggregates import append_expecting, read_filter, read_stored
from switchboard.runtime.bus import Bus
from switchboard.runtime.claims import claim_subject
from switchboard.runtime.failures import InfrastructureError


def aggregate_filter(aggregate_id: str) -> str:
    return f"crm.*.*.{aggregate_id}"


class NotCreatedYetError(CrmServiceError, InfrastructureError):
    """An append to an aggregate that was claimed and not yet created: its founder is
    between its claim and its creating event (or crashed there, and its redelivery will
    finish). Retryable like any concurrent writer, never counted against the message."""


@dataclass(frozen=True)
class Aggregate:
    """An aggregate's events in order and its version (the stream sequence of the last)."""

    id: str
    events: list[Decoded]
    version: int


class EventStore:
    """Appends to and reads from the CRM stream; personal fields go in sealed (``keys``, by
    default the service's) and come out opened."""

    def __init__(self, bus: Bus, keys: pii.PiiKeys | None = None) -> None:
        self.bus = bus
        self.keys = keys

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
        ws = cause.workspace_id if cause is not None else workspace_id
        sealed = await pii.seal_model(self.keys or pii.installed(), ws, model)
        return await append_expecting(
            self.bus,
            sealed,
            aggregate_filter(aggregate_id),
            expected,
            aggregate=aggregate_id,
            cause=cause,
            workspace_id=workspace_id,
            id=id,
        )

    async def append_to_existing(
        self, model: Message, aggregate_id: str, *, cause: Envelope, id: str
    ) -> None:
        """Append to an aggregate at whatever version it is, once it exists, sealed like
        every other append. ``id`` is deterministic, so a redelivery's copy is dropped.

        Raises NotCreatedYetError while the aggregate has no events: appended first, this
        event would take sequence 0 and the founder's creation (expected at 0) would
        conflict, leaving an aggregate that is never created."""
        if await self.first(aggregate_id) is None:
            raise NotCreatedYetError(f"{aggregate_id} is claimed and not created yet")
        sealed = await pii.seal_model(self.keys or pii.installed(), cause.workspace_id, model)
        await self.bus.publish(sealed, cause=cause, id=id)

    async def load(self, aggregate_id: str) -> Aggregate:
        """Read every event of one aggregate (few per aggregate: a short ordered read)."""
        stored = await read_filter(self.bus, "CRM", aggregate_filter(aggregate_id))
        version = stored[-1].seq if stored else 0
        return Aggregate(aggregate_id, [s.decoded for s in stored], version)

    async def last(self, aggregate_id: str) -> Decoded | None:
        """The latest event of an aggregate (a claim has exactly one)."""
        return await self._read(self.bus.js.get_last_msg("CRM", aggregate_filter(aggregate_id)))

    async def first(self, aggregate_id: str) -> Decoded | None:
        """The creating event of an aggregate."""
        subject = aggregate_filter(aggregate_id)
        return await self._read(self.bus.js.get_msg("CRM", seq=1, subject=subject, next=True))

    async def first_claim(self) -> Decoded | None:
        """The first identity claim in the stream (None: nothing is claimed yet)."""
        subject = claim_subject("*")
        return await self._read(self.bus.js.get_msg("CRM", seq=1, subject=subject, next=True))

    async def _read(self, stored: Awaitable[RawStreamMsg]) -> Decoded | None:
        """One stored event, opened and decoded (None: the aggregate has none)."""
        found = await read_stored(stored, self.keys)
        return found.decoded if found else None
