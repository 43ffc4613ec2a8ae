"""Cancelling and rescheduling a scheduled send until it leaves.

A scheduled send (``not_before``) waits in the OUTBOUND stream (a delayed redelivery held by
the server, so it survives the death of any instance). A change to it is written beside its
attempt record in the ``sends`` bucket and read by whichever instance gets the command when
it comes due; that instance fails it as cancelled, or waits on to the later time. So there
is one writer of the record and its delivery events (the command's handler), as for every
other send.

A change is accepted only while the send has not left: its command still waits in the
stream, its record is not done, and its time is more than ``GUARD`` away (a handler reading
the change at the due time cannot miss a write made before that).

Moving a send later needs nothing more: when the server hands the command out at the old
time, the handler sees the later one and waits on. Moving it earlier cannot wait for the
server (it holds the command until the old time), so the command is replaced: the record
is released from its owner (compare-and-set), a copy of the command is published under a
new bus id, the original is deleted from the stream, and the copy becomes the owner. A crash
in between loses nothing: the original still owns the send (it leaves at its old time at the
latest), or the copy does, or both find the record done and the second is acked.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from nats.aio.msg import Msg
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from pydantic import AwareDatetime, BaseModel

from switchboard.events import Envelope, decode_message
from switchboard.events.base import Message
from switchboard.events.catalog.delivery import DeliveryFailed, DeliveryRescheduled
from switchboard.events.catalog.outbound import ChangeScheduledSend, SendMessage
from switchboard.outbound.attempts import Attempt, Attempts
from switchboard.outbound.kvmodels import KvModels
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError, decode_or_reject

GUARD = timedelta(seconds=1)


class ScheduleChange(BaseModel):
    """The last change asked for one scheduled send."""

    action: Literal["cancel", "reschedule"]
    not_before: AwareDatetime | None = None
    at: AwareDatetime


@dataclass(frozen=True)
class Refusal:
    """Why a change cannot be made: an HTTP status and a sentence naming the field."""

    status: int
    code: str
    reason: str


def effective_time(original: datetime | None, change: ScheduleChange | None) -> datetime | None:
    """When a send is due: the last reschedule, else its command's ``not_before``."""
    if change is not None and change.action == "reschedule" and change.not_before is not None:
        return change.not_before
    return original


def refuse_change(
    *,
    due: datetime | None,
    expires_at: datetime | None,
    done: bool,
    now: datetime,
    new_time: datetime | None,
) -> Refusal | None:
    """The refusal of a cancel (``new_time`` None) or reschedule of a send due at ``due``,
    or None when it may be made. Pure: tested without NATS."""
    if done or due is None or now >= due - GUARD:
        what = "it is not scheduled" if due is None else "it has left or is leaving"
        return Refusal(409, "not_changeable", f"the send cannot be changed: {what}")
    if new_time is None:
        return None
    if new_time < now:
        return Refusal(422, "not_before", "not_before: is in the past")
    if expires_at is not None and new_time >= expires_at:
        return Refusal(422, "not_before", "not_before: is at or after the send's expires_at")
    return None


def change_key(workspace: str, message_id: str) -> str:
    """The KV key of a send's schedule change (ids are unique per workspace only)."""
    scoped = f"{workspace}\x00{message_id}".encode()
    return "schedule." + hashlib.sha256(scoped).hexdigest()[:40]


class ScheduleChanges:
    """The changes, one KV key per scheduled send in the ``sends`` bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._records = KvModels(kv, ScheduleChange)

    async def get(self, workspace: str, message_id: str) -> ScheduleChange | None:
        return await self._records.get(change_key(workspace, message_id))

    async def put(self, workspace: str, message_id: str, change: ScheduleChange) -> None:
        await self._records.put(change_key(workspace, message_id), change)


@dataclass
class ScheduleDesk:
    """Makes a change (from the API or an ``outbound.schedule_change`` command): checks it
    against the send's record and its waiting command, then writes it and announces it."""

    bus: Bus
    attempts: Attempts
    changes: ScheduleChanges
    stream: str = "OUTBOUND"

    async def change(
        self, workspace: str, message_id: str, new_time: datetime | None, cause: Envelope | None
    ) -> Refusal | Message:
        """Cancel (``new_time`` None) or reschedule; the event announced, or the refusal.
        Another workspace's message does not exist here (404)."""
        found = await self.attempts.read(workspace, message_id)
        if found is None:
            return Refusal(404, "not_found", f"no message {message_id!r}")
        record, revision = found
        waiting = await self._waiting_command(record)
        if waiting is None:
            return Refusal(409, "not_changeable", "the send cannot be changed: it has left")
        cmd, raw = waiting
        if cmd.campaign_id:
            return Refusal(409, "not_changeable", "a campaign's send follows its campaign")
        change = await self.changes.get(workspace, message_id)
        due = effective_time(cmd.not_before, change)
        now = self.attempts.now()  # the clock the sender judges the time by
        refused = refuse_change(
            due=due, expires_at=cmd.expires_at, done=record.done, now=now, new_time=new_time
        )
        if refused is not None:
            return refused
        base = {
            "message_id": message_id,
            "channel": cmd.channel,
            "account": cmd.account,
            "recipient": cmd.recipient,
            "at": now,
        }
        if new_time is None:
            # The record ends here (compare-and-set: a redelivery meanwhile wins and the
            # cancel is refused); the command, when it comes due, finds it done and is acked.
            reason = "cancelled before it was sent"
            failed = record.step("failed", reason=f"cancelled: {reason}", error_code="cancelled")
            if not await self.attempts.replace(failed, revision):
                return Refusal(409, "not_changeable", "the send changed meanwhile; ask again")
            event: Message = DeliveryFailed(
                **base, reason=reason, error_code="cancelled", permanent=True,
                attempts=record.attempts,
            )  # fmt: skip
        else:
            await self.changes.put(
                workspace,
                message_id,
                ScheduleChange(action="reschedule", not_before=new_time, at=now),
            )
            if due is not None and new_time < due:
                refused = await self._replace_command(record, revision, raw, new_time)
                if refused is not None:
                    return refused
            event = DeliveryRescheduled(**base, not_before=new_time, previous=due)
        await pii.publish_sealed(self.bus, event, cause=cause, workspace=workspace)
        return event

    async def _waiting_command(self, record: Attempt) -> tuple[SendMessage, RawStreamMsg] | None:
        """The command that owns the send (and its stored message), while it still waits in
        the stream."""
        if record.owner is None:
            return None
        try:
            raw = await self.bus.js.get_msg(self.stream, record.owner)
        except NotFoundError:
            return None
        try:
            decoded = decode_message(raw.subject or "", dict(raw.headers or {}), raw.data or b"")
        except ValueError:
            return None
        model = decoded.model
        return (model, raw) if isinstance(model, SendMessage) else None

    async def _replace_command(
        self, record: Attempt, revision: int, raw: RawStreamMsg, new_time: datetime
    ) -> Refusal | None:
        """Replace the waiting command by a copy the server hands out now (the module's
        docstring says why and in which order)."""
        released = record.model_copy(update={"owner": None})
        if not await self.attempts.replace(released, revision):
            return Refusal(409, "not_changeable", "the send changed meanwhile; ask again")
        headers = dict(raw.headers or {})
        headers["Nats-Msg-Id"] = f"{headers.get('Nats-Msg-Id', '')}:at:{new_time.isoformat()}"
        ack = await self.bus.publish_raw(raw.subject or "", raw.data or b"", headers)
        with contextlib.suppress(NotFoundError):
            await self.bus.js.delete_msg(self.stream, record.owner or 0)
        # The copy owns the send from now on (unless it has already written the record).
        found = await self.attempts.read(record.workspace_id, record.message_id)
        if found is not None and found[0].owner is None and not found[0].done:
            await self.attempts.replace(found[0].model_copy(update={"owner": ack.seq}), found[1])
        return None

    async def handle(self, msg: Msg) -> None:
        """An ``outbound.schedule_change`` command: made, or dead-lettered with the reason."""
        decoded = decode_or_reject(msg)
        cmd = decoded.model
        if not isinstance(cmd, ChangeScheduledSend):
            raise PermanentError(f"{cmd.name} is not a schedule change")
        answer = await self.change(
            decoded.envelope.workspace_id, cmd.message_id, cmd.not_before, decoded.envelope
        )
        if isinstance(answer, Refusal):
            raise PermanentError(f"{answer.code}: {answer.reason}")
        await msg.ack()
