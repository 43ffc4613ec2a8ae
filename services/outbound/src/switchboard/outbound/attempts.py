"""Attempt records in the ``sends`` KV bucket: what happened to each ``message_id`` of
each workspace.

This is what makes a redelivered or repeated command safe, long after JetStream's duplicate
window: a record names the command that owns the send (its stream sequence) and the
fingerprint of its body, so a send known to have completed is never made again, a second
copy of a pending command is dropped while the first waits (``not_before``), and another
body under a taken id is refused (:func:`verdict`). The guarantee is at-least-once: a command
whose provider call was in flight when its instance crashed is sent again by the next
instance, so a duplicate is possible only for sends in flight at the moment of a crash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from switchboard.events.base import Message
from switchboard.events.registry import model_for
from switchboard.outbound.kvmodels import scoped
from switchboard.runtime.kv import KvModels

Status = Literal["queued", "in_flight", "retrying", "sent", "failed", "moved"]


class Step(BaseModel):
    status: Status
    at: datetime
    attempt: int = 0
    reason: str | None = None


class Announcement(BaseModel):
    """An outcome event as published, kept in its record. The record and the event are
    written side by side, so the event may be lost to an outage after the record is stored:
    a redelivery that finds the record done publishes it again (its id is fixed, so it is
    stored once). For the provider commands, whose events are not sealed (as in DELIVERY)."""

    name: str
    version: int
    body: dict[str, Any]

    @classmethod
    def of(cls, event: Message) -> Announcement:
        return cls(name=event.name, version=event.version, body=event.model_dump(mode="json"))

    def event(self) -> Message:
        return model_for(self.name, self.version).model_validate(self.body)


class Attempt(BaseModel):
    """The record of one message."""

    message_id: str
    workspace_id: str
    channel: str
    account: str
    recipient: str
    status: Status = "queued"
    attempts: int = 0
    provider_message_id: str | None = None
    # The chat the provider says it went to, when its answer names one (a ``@username``
    # recipient's numeric id): the conversation of the sent message, as inbound names it.
    chat_id: str | None = None
    # Its kind and title, when the answer names them (a channel's or a group's).
    chat_type: str | None = None
    chat_title: str | None = None
    reason: str | None = None
    campaign_id: str | None = None
    error_code: str | None = None
    permanent: bool | None = None  # a failure: permanent, or retries ran out (None: before kept)
    announced: Announcement | None = None  # a provider command's outcome event
    # The fingerprint of the command's body and the stream sequence of the command that
    # sends it (None in records written before either was kept).
    fingerprint: str | None = None
    owner: int | None = None
    # A campaign send whose account dropped out: the message id it was moved on as, and
    # the ``<channel>/<account>`` it goes through.
    moved_to: str | None = None
    moved_via: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    history: list[Step] = Field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status in ("sent", "failed", "moved")

    def step(
        self,
        status: Status,
        reason: str | None = None,
        at: datetime | None = None,
        **changes: Any,
    ) -> Attempt:
        attempts = changes.get("attempts", self.attempts)
        step = Step(status=status, at=at or datetime.now(UTC), attempt=attempts, reason=reason)
        history = [*self.history, step]
        return self.model_copy(
            update={"status": status, "reason": reason, "history": history[-50:], **changes}
        )


def record_key(workspace: str, message_id: str) -> str:
    """The KV key of a message's record: ids are unique per workspace only."""
    return "send." + scoped(workspace, message_id)


class Verdict(StrEnum):
    """What a command does with the record it found under its message_id."""

    NEW = "new"  # the record is from a use of the id older than the retention: start over
    PROCEED = "proceed"  # this command owns the send (or the record names no owner)
    DONE = "done"  # completed before: nothing more to do
    CONFLICT = "conflict"  # another body under the same id: refuse, touch nothing
    OTHER_OWNER = "other_owner"  # a copy of a command another stream message owns


def verdict(record: Attempt, fp: str, seq: int, now: datetime, retention: timedelta) -> Verdict:
    """The decision for a command (body ``fp``, stream sequence ``seq``) whose id has
    ``record``; ids are remembered for ``retention`` after their use completed."""
    if record.done and now - record.created_at > retention:
        return Verdict.NEW
    if record.fingerprint is not None and record.fingerprint != fp:
        return Verdict.CONFLICT
    if record.done:
        return Verdict.DONE
    if record.owner is None or record.owner == seq:
        return Verdict.PROCEED
    return Verdict.OTHER_OWNER


class Attempts:
    """The records, one KV key per message_id (hashed: ids may hold any character)."""

    def __init__(
        self, kv: KeyValue, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.kv = kv
        # When a record's use of its id began, and now, for the retention: the service
        # gives the server's clock (``runtime.servertime``), one time for every instance.
        self.now = now
        self._records = KvModels(kv, Attempt, exclude_none=True)

    def fresh(self, record: Attempt) -> Attempt:
        """``record`` as the start of a new use of its id, dated on the shared clock."""
        return record.model_copy(update={"created_at": self.now()})

    async def begin(self, record: Attempt) -> tuple[Attempt, bool]:
        """Store ``record`` if the id has none yet: (record, True); else (existing, False)."""
        found, revision = await self.begin_at(record)
        return found, revision is None

    async def begin_at(self, record: Attempt) -> tuple[Attempt, int | None]:
        """Store ``record`` if the id has none yet: (record, None); else (existing, its KV
        revision). One round trip for a new message, where a read and a write would take two."""
        record = self.fresh(record)
        if not await self.replace(record, 0):
            existing = await self.read(record.workspace_id, record.message_id)
            if existing is not None:
                return existing
            await self.put(record)  # the key was deleted meanwhile: it is ours now
        return record, None

    async def replace(self, record: Attempt, revision: int) -> bool:
        """Write ``record`` only if its key is still at ``revision`` (True): two copies of a
        command taking over an orphaned record cannot both win."""
        return await self._records.replace(_key(record), record, revision)

    async def get(self, workspace: str, message_id: str) -> Attempt | None:
        return await self._records.get(record_key(workspace, message_id))

    async def read(self, workspace: str, message_id: str) -> tuple[Attempt, int] | None:
        """The record with its KV revision (for :meth:`replace`)."""
        return await self._records.read(record_key(workspace, message_id))

    async def put(self, record: Attempt) -> None:
        await self._records.put(_key(record), record)


async def claim(
    attempts: Attempts,
    first: Attempt,
    retention: timedelta,
    waiting: Callable[[int], Awaitable[bool]],
    heir: bool = False,
) -> tuple[Verdict, Attempt, bool]:
    """What a command (its record ``first``, with fingerprint and owner) does: (verdict,
    the record it goes on with, whether that record is new). The verdicts left to the
    caller: PROCEED and DONE as the record says, CONFLICT (refuse it, touch nothing) and
    OTHER_OWNER (a copy of a command still ``waiting`` in the stream: ack it, the owner
    sends). A record whose use expired, or whose owner left the stream unfinished, is
    taken over (compare-and-set: two copies cannot both win): as the same send by the
    ``heir`` (fired by the schedule that held it), as a new use of the id by any other."""
    record, revision = await attempts.begin_at(first)
    fp, seq = first.fingerprint or "", first.owner or 0
    while revision is not None:
        decided = verdict(record, fp, seq, attempts.now(), retention)
        if decided in (Verdict.PROCEED, Verdict.DONE, Verdict.CONFLICT):
            return decided, record, False
        if decided is Verdict.OTHER_OWNER and record.owner and await waiting(record.owner):
            return decided, record, False
        if heir and decided is Verdict.OTHER_OWNER:
            if await attempts.replace(taken := record.model_copy(update={"owner": seq}), revision):
                return Verdict.PROCEED, taken, False
        elif await attempts.replace(taken := attempts.fresh(first), revision):
            return Verdict.NEW, taken, True
        found = await attempts.read(first.workspace_id, first.message_id)
        record, revision = found if found is not None else await attempts.begin_at(first)
    return Verdict.NEW, record, True


def _key(record: Attempt) -> str:
    return record_key(record.workspace_id, record.message_id)
