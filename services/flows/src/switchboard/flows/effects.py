"""Carrying out a decision's effects on the bus, each under its deterministic id.

A send is ``cmd.outbound.send`` with ``message_id = flow:<effect id>`` (outbound sends a
message id at most once); a CRM change is a ``cmd.crm.*`` command with that id as its event
id; a timer is a JetStream message schedule that the server fires at its time. Publishing
the same decision again therefore changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from switchboard.events import Envelope, encode
from switchboard.events.catalog.crm import (
    AssignLead,
    ChangeLeadStage,
    IdentityClaimed,
    UpdateContact,
    claim_key,
    first_lead_id,
    identity_key,
)
from switchboard.events.catalog.flows import FireTimer, RunEffect, RunRecorded
from switchboard.events.catalog.outbound import Button, Keyboard, OutText, Priority, SendMessage
from switchboard.events.subjects import token
from switchboard.runtime.aggregates import last_stored
from switchboard.runtime.bus import Bus


class ContactUnknownError(Exception):
    """The CRM has not resolved the customer yet (it will: retried)."""


def schedule_subject(timer_id: str) -> str:
    """Where a timer's schedule waits (one schedule per subject) until the server fires it."""
    return f"cmd.flows.schedule.v1.{token(timer_id)}"


def send_command(rec: RunRecorded, effect: RunEffect) -> SendMessage:
    conv = rec.conversation
    rows = effect.data.get("buttons") or []
    keyboard = None
    if rows:
        keyboard = Keyboard(
            type="inline",
            rows=tuple(
                tuple(Button(text=b["text"], callback_data=b["data"]) for b in row) for row in rows
            ),
        )
    return SendMessage(
        message_id=f"flow:{effect.id}",
        channel=conv.channel,
        account=conv.account,
        recipient=conv.chat_id,
        content=OutText(text=effect.data["text"], parse_mode=effect.data.get("parse_mode")),
        keyboard=keyboard,
        priority=Priority.HIGH,
    )


def timer_command(rec: RunRecorded, effect: RunEffect) -> FireTimer:
    return FireTimer(
        session=rec.session,
        run_id=rec.run_id,
        timer_id=effect.id,
        due_at=datetime.fromisoformat(effect.data["due_at"]),
    )


def schedule_header(due_at: datetime) -> str:
    """``@at <RFC 3339 UTC>`` as nats-server (>= 2.12) reads it."""
    return "@at " + due_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Effects:
    """Publishes the effects of recorded decisions."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def apply(self, rec: RunRecorded, cause: Envelope) -> None:
        for effect in rec.effects:
            if effect.kind == "send":
                await self.bus.publish(send_command(rec, effect), cause=cause)
            elif effect.kind == "timer":
                await self._schedule(timer_command(rec, effect), cause)
            else:
                await self._crm(rec, effect, cause)

    async def _schedule(self, timer: FireTimer, cause: Envelope) -> None:
        enc = encode(timer, source=self.bus.source, cause=cause)
        headers = {
            **enc.headers,
            "Nats-Msg-Id": timer.deterministic_id(),
            "Nats-Schedule": schedule_header(timer.due_at),
            "Nats-Schedule-Target": enc.subject,
        }
        await self.bus.publish_raw(schedule_subject(timer.timer_id), enc.body, headers)

    async def contact_of(self, rec: RunRecorded, workspace: str) -> str:
        conv = rec.conversation
        key = claim_key(workspace, identity_key(conv.channel.value, conv.sender_id))
        stored = await last_stored(self.bus, "CRM", f"crm.identity_claimed.v1.{key}")
        if stored is None or not isinstance(stored.decoded.model, IdentityClaimed):
            raise ContactUnknownError(f"the CRM has no contact for {conv.channel}:{conv.sender_id}")
        return stored.decoded.model.contact_id

    async def _crm(self, rec: RunRecorded, effect: RunEffect, cause: Envelope) -> None:
        contact = await self.contact_of(rec, cause.workspace_id)
        by = f"flow:{rec.flow_id}"
        command: UpdateContact | ChangeLeadStage | AssignLead
        if effect.kind == "tag":
            command = UpdateContact(
                contact_id=contact,
                tags_added=tuple(effect.data.get("add", ())),
                tags_removed=tuple(effect.data.get("remove", ())),
                by=by,
            )
        elif effect.kind == "lead_stage":
            command = ChangeLeadStage(
                lead_id=first_lead_id(contact), to_stage=effect.data["stage"], by=by
            )
        else:
            command = AssignLead(
                lead_id=first_lead_id(contact), assignee=effect.data.get("assignee"), by=by
            )
        await self.bus.publish(command, cause=cause, id=f"flow:{effect.id}")
