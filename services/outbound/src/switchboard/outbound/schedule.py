"""Cancelling and rescheduling a scheduled send until it leaves.

A scheduled send (``not_before``) waits in the OUTBOUND stream (a delayed redelivery held by
the server, so it survives the death of any instance). A change to it is written beside its
attempt record in the ``sends`` bucket and read by whichever instance gets the command when
it comes due; that instance fails it as cancelled, or waits on to the later time. So there
is one writer of the record and its delivery events (the command's handler), as for every
other send.

A change is accepted only while the send has not left: its command still waits in the
stream, its record is not done, and its time is more than ``GUARD`` away (a handler reading
the change at the due time cannot miss a write made before that). A send can be moved later,
never earlier: its command is held by the server until the time it was last given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import orjson
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import AwareDatetime, BaseModel

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
    if new_time < due:
        return Refusal(
            422,
            "not_before",
            "not_before: a scheduled send can only be moved later (cancel it and send anew "
            "under a new message_id to send earlier)",
        )
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

    async def get(self, workspace: str, message_id: str) -> ScheduleChange | None:
        try:
            entry = await self.kv.get(change_key(workspace, message_id))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return ScheduleChange.model_validate(orjson.loads(entry.value))

    async def put(self, workspace: str, message_id: str, change: ScheduleChange) -> None:
        await self.kv.put(change_key(workspace, message_id), change.model_dump_json().encode())
