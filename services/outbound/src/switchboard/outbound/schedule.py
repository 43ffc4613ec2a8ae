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

Until its time a send is held by the server as a message schedule (``hold``), not as a
command nak'ed with a delay: such a command keeps one of its lane's ack-pending slots all
that time, so 20,000 sends scheduled ahead stopped every workspace's replies, and the stream
drops any message 7 days after it was stored. A send due further ahead than ``HOLD_HOP`` is
held for that long and held again when it comes back, each time as a new message and with
its record and change written again (the ``sends`` bucket forgets a key after 8 days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from nats.aio.msg import Msg
from nats.js.api import RawStreamMsg
from nats.js.errors import APIError
from nats.js.kv import KeyValue
from pydantic import AwareDatetime, BaseModel
from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_exponential

from switchboard.events import Envelope, decode_message
from switchboard.events.base import Message
from switchboard.events.catalog.delivery import DeliveryFailed, DeliveryRescheduled
from switchboard.events.catalog.outbound import ChangeScheduledSend, SendMessage
from switchboard.outbound.attempts import Attempt, Attempts
from switchboard.outbound.kvmodels import scoped
from switchboard.runtime import pii
from switchboard.runtime.aggregates import EXPECTED_LAST_SUBJECT_SEQUENCE, WRONG_LAST_SEQUENCE
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError, decode_or_reject
from switchboard.runtime.kv import KvModels
from switchboard.runtime.schedules import (
    SCHEDULER,
    TARGET,
    held_headers,
    hold_until,
    republishable,
    scheduled_at,
)

GUARD = timedelta(seconds=1)
# Below OUTBOUND's 7 days (max_age) and the sends bucket's 8 (ttl), with room for an outage:
# a held send is a new message with a rewritten record at least this often.
HOLD_HOP = timedelta(days=3)


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


CHANGED_MEANWHILE = Refusal(409, "not_changeable", "the send changed meanwhile; ask again")
# How long a change waits for the send's record to settle (another change replacing its
# command takes a few round trips); then it answers "changed meanwhile; ask again".
CHANGE_PATIENCE_S = 3.0


def effective_time(original: datetime | None, change: ScheduleChange | None) -> datetime | None:
    """When a send is due: the last reschedule, else its command's ``not_before``."""
    if change is not None and change.action == "reschedule" and change.not_before is not None:
        return change.not_before
    return original


def refuse_change(
    *,
    due: datetime | None,
    expires_at: datetime | None,
    now: datetime,
    new_time: datetime | None,
) -> Refusal | None:
    """The refusal of a cancel (``new_time`` None) or reschedule of a waiting send due at
    ``due``, or None when it may be made (one that is done: :func:`refuse_done`). Pure:
    tested without NATS."""
    if due is None or now >= due - GUARD:
        what = "it is not scheduled" if due is None else "it has left or is leaving"
        return Refusal(409, "not_changeable", f"the send cannot be changed: {what}")
    if new_time is None:
        return None
    if new_time < now:
        return Refusal(422, "not_before", "not_before: is in the past")
    if expires_at is not None and new_time >= expires_at:
        return Refusal(422, "not_before", "not_before: is at or after the send's expires_at")
    return None


def refuse_done(record: Attempt) -> Refusal | None:
    """The refusal of any change of a send that is done, saying how it ended (a reschedule
    that raced a cancel was answered "it has left", of a send that never left); None while
    it is not done. Pure: tested without NATS."""
    if not record.done:
        return None
    if record.status == "sent":
        how = "it was sent"
    elif record.status == "moved":
        how = f"it was moved on as {record.moved_to!r}"
    elif record.error_code == "cancelled":
        how = "it was cancelled"
    else:
        how = f"it failed ({record.error_code or 'no code'})"
    return Refusal(409, "not_changeable", f"the send cannot be changed: {how}")


def held_subject(workspace: str, message_id: str) -> str:
    """Where a send waits for its time as a message schedule: one per send (publishing it
    again replaces it)."""
    return "cmd.outbound.held." + scoped(workspace, message_id)


def fired_for(msg: Msg, workspace: str, message_id: str) -> bool:
    """Whether ``msg`` is the send's own schedule firing (the heir of the held send)."""
    return (msg.headers or {}).get(SCHEDULER) == held_subject(workspace, message_id)


async def hold(
    bus: Bus,
    attempts: Attempts,
    msg: Msg,
    send: tuple[str, str],
    due: datetime,
    now: datetime,
    hop: timedelta = HOLD_HOP,
) -> int | None:
    """Hand the command of a send (``(workspace, message_id)``) that is not due to the
    server's scheduler, make the schedule the send's owner, and ack the command; the
    schedule's stream sequence (None: the send was stopped meanwhile, nothing waits).

    The server fires a copy into the same lane at its time, or after ``hop``. A crash
    before the ack loses nothing: the command comes again and finds the schedule owning the
    send (or owns it still, and holds it again: the new schedule replaces the first).

    A send has one schedule (one per subject: a new one replaces the one stored), so a
    command stores its time only while no other command or schedule waits for the send: a
    change moving the send earlier (``ScheduleDesk._replace_command``) may have replaced this
    command by a copy, held already at the new time. The store is made conditional on the
    schedule read (``Nats-Expected-Last-Subject-Sequence``), so one stored meanwhile wins.

    A record with no owner was released by such a change, whose copy is about to own it:
    the schedule does not take it (it would leave at the old time, and the copy would find
    it taken), and stays as the safety net of a change that died before its copy. The
    copy's own hold replaces it; if the copy sends first, it fires later and finds it done."""
    workspace, message_id = send
    subject, stream = held_subject(workspace, message_id), msg.metadata.stream
    headers = republishable(dict(msg.headers or {}))
    headers.pop("Nats-Msg-Id", None)  # every hold is a new message; the record decides repeats
    headers |= held_headers(due, now, hop, msg.subject)
    mine, fires = msg.metadata.sequence.stream, hold_until(due, now, hop)
    while True:
        found = await attempts.read(workspace, message_id)
        record = None if found is None else found[0]
        if record is not None and record.done:  # cancelled or erased meanwhile
            await msg.ack()
            return None
        last = await bus.stored(stream, subject=subject)
        stored_seq = 0 if last is None else last.seq or 0
        if record is not None and not may_store(record.owner, mine, last, fires):
            await msg.ack()
            return None
        try:  # only over the schedule read above: one stored meanwhile is another's
            expect = {EXPECTED_LAST_SUBJECT_SEQUENCE: str(stored_seq)}
            ack = await bus.publish_raw(subject, msg.data, headers | expect)
            break
        except APIError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
    held = ack.seq
    while (found := await attempts.read(workspace, message_id)) is not None:
        record, revision = found
        if record.done:  # cancelled or erased meanwhile: nothing to fire
            await bus.delete_msg(stream, held)
            await msg.ack()
            return None
        if record.owner not in (mine, held):
            break  # released, or another copy took it over: the claim settles ours when it fires
        if await attempts.replace(record.model_copy(update={"owner": held}), revision):
            break
    await msg.ack()
    return held


def may_store(owner: int | None, mine: int, last: RawStreamMsg | None, fires: datetime) -> bool:
    """Whether a command (stream sequence ``mine``) may store its schedule, firing at
    ``fires``, over ``last`` (the send's stored schedule, if any). Its own record: yes.
    Another command or schedule owns the send: no (a change replaced this command, and its
    copy's schedule would be replaced). Released (no owner: a change is moving the send
    earlier): unless a schedule firing no later is stored (the copy's, held first); an
    original's later one is only the safety net, which the copy replaces."""
    if owner == mine:
        return True
    if owner is not None:
        return False
    stored_at = None if last is None else scheduled_at(last.headers)
    return last is None or stored_at is None or fires < stored_at


def change_key(workspace: str, message_id: str) -> str:
    """The KV key of a send's schedule change (ids are unique per workspace only)."""
    return "schedule." + scoped(workspace, message_id)


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
        Another workspace's message does not exist here (404).

        The send's record changes under a change now and then (the sender handing a new
        send to the scheduler, a hop, another change replacing its command): the change is
        made again on what it finds then, a moment later, for up to ``CHANGE_PATIENCE_S``."""
        trying = AsyncRetrying(
            retry=retry_if_result(lambda answer: answer == CHANGED_MEANWHILE),
            wait=wait_exponential(multiplier=0.01, max=0.25),
            stop=stop_after_delay(CHANGE_PATIENCE_S),
            retry_error_callback=lambda state: CHANGED_MEANWHILE,
        )
        answer: Refusal | Message = await trying(
            self._change, workspace, message_id, new_time, cause
        )
        return answer

    async def _change(
        self, workspace: str, message_id: str, new_time: datetime | None, cause: Envelope | None
    ) -> Refusal | Message:
        found = await self.attempts.read(workspace, message_id)
        if found is None:
            return Refusal(404, "not_found", f"no message {message_id!r}")
        record, revision = found
        if (done := refuse_done(record)) is not None:
            return done
        if record.owner is None:
            return CHANGED_MEANWHILE  # released by a change moving it earlier: its copy is next
        waiting = await self._waiting_command(record)
        if waiting is None:
            # Gone from the stream, or handed over since the record was read: the sender
            # holding a send (``hold``) makes the schedule its owner, then acks the command
            # this record still names. Only a record unchanged meanwhile means it has left.
            again = await self.attempts.read(workspace, message_id)
            if again is not None and again[1] != revision:
                return CHANGED_MEANWHILE
            return Refusal(409, "not_changeable", "the send cannot be changed: it has left")
        cmd, raw = waiting
        if cmd.campaign_id:
            return Refusal(409, "not_changeable", "a campaign's send follows its campaign")
        change = await self.changes.get(workspace, message_id)
        due = effective_time(cmd.not_before, change)
        now = self.attempts.now()  # the clock the sender judges the time by
        refused = refuse_change(due=due, expires_at=cmd.expires_at, now=now, new_time=new_time)
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
                return CHANGED_MEANWHILE
            # the recipient and text leave the stream (unless the command has left already)
            await self.bus.delete_msg(self.stream, raw.seq or 0)
            event: Message = DeliveryFailed(
                **base, reason=reason, error_code="cancelled", permanent=True,
                attempts=record.attempts,
            )  # fmt: skip
        else:
            made = ScheduleChange(action="reschedule", not_before=new_time, at=now)
            if due is not None and new_time < due:
                refused = await self._replace_command(record, revision, raw, made)
                if refused is not None:
                    return refused
            else:
                await self.changes.put(workspace, message_id, made)
            event = DeliveryRescheduled(**base, not_before=new_time, previous=due)
        await pii.publish_sealed(self.bus, event, cause=cause, workspace=workspace)
        return event

    async def _waiting_command(self, record: Attempt) -> tuple[SendMessage, RawStreamMsg] | None:
        """The command that owns the send (and its stored message), while it still waits in
        the stream; or else its schedule (a hold that found the record released leaves it
        to the change's copy, and the copy may have been held and acked before the change
        named it the owner: then the schedule is what waits)."""
        raw = None if record.owner is None else await self.bus.stored(self.stream, record.owner)
        if raw is None:
            held = held_subject(record.workspace_id, record.message_id)
            raw = await self.bus.stored(self.stream, subject=held)
        if raw is None:
            return None
        try:
            decoded = decode_message(raw.subject or "", dict(raw.headers or {}), raw.data or b"")
        except ValueError:
            return None
        model = decoded.model
        return (model, raw) if isinstance(model, SendMessage) else None

    async def _replace_command(
        self, record: Attempt, revision: int, raw: RawStreamMsg, change: ScheduleChange
    ) -> Refusal | None:
        """Replace the waiting command by a copy the server hands out now (the module's
        docstring says why and in which order), ``change`` written once the send is free
        (so a change that has to be made again finds the send's time as it was)."""
        released = record.model_copy(update={"owner": None})
        if not await self.attempts.replace(released, revision):
            return CHANGED_MEANWHILE
        await self.changes.put(record.workspace_id, record.message_id, change)
        # A held send's schedule names its lane: the copy goes there, as a plain command.
        subject = (raw.headers or {}).get(TARGET) or raw.subject or ""
        headers = republishable(dict(raw.headers or {}))
        # A new bus id for each replacement: the send's and the record's revision at the
        # release. (From the new time alone, as it was for a held send, whose schedule has no
        # id, a second send moved to the same time was dropped as a duplicate: lost.)
        key = scoped(record.workspace_id, record.message_id)
        headers["Nats-Msg-Id"] = f"moved:{key}:{revision}"
        ack = await self.bus.publish_raw(subject, raw.data or b"", headers)
        await self.bus.delete_msg(self.stream, raw.seq or 0)
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
