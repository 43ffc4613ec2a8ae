"""Carrying out a decision's effects on the bus, each under its deterministic id.

A send is ``cmd.outbound.send`` with ``message_id = flow:<effect id>`` (outbound sends a
message id at most once); a CRM change is a ``cmd.crm.*`` command with that id as its event
id; a timer is a JetStream message schedule that the server fires at its time. Publishing
the same decision again therefore changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import httpx
from nats.aio.msg import Msg
from pydantic import SecretStr

from switchboard.events import Envelope, encode
from switchboard.events.catalog.crm import (
    AssignLead,
    CampaignSegment,
    ChangeLeadStage,
    ContactCreated,
    ContactIdentityLinked,
    ContactUpdated,
    CreateLead,
    Identity,
    IdentityClaimed,
    LeadCreated,
    LeadStageChanged,
    StartSegmentCampaign,
    UpdateContact,
    first_lead_id,
    identity_key,
)
from switchboard.events.catalog.flows import FireTimer, FlowConversation, RunEffect, RunRecorded
from switchboard.events.catalog.outbound import (
    AnswerCallback,
    Button,
    Keyboard,
    MediaSource,
    OutMedia,
    OutText,
    Priority,
    SendMessage,
)
from switchboard.events.subjects import token
from switchboard.flows import webhooks
from switchboard.flows.engine import ContactFacts, Input
from switchboard.flows.errors import FlowsServiceError
from switchboard.runtime import claims
from switchboard.runtime.aggregates import Stored, last_stored, read_filter
from switchboard.runtime.bus import Bus
from switchboard.runtime.failures import InfrastructureError
from switchboard.runtime.schedules import schedule_headers
from switchboard.runtime.tasks import cancel_and_wait

SecretOf = Callable[[str, str], SecretStr | None]


class ContactUnknownError(FlowsServiceError):
    """The CRM has not resolved the customer yet (it will: retried)."""


class WorkspaceBusyError(FlowsServiceError, InfrastructureError):
    """The workspace's webhook calls hold their share of this instance's handlers: the
    input comes again shortly (never counted against it), and another workspace's runs go
    on meanwhile."""


class WebhookShare:
    """How many webhook calls each workspace may have waiting at once in one instance.

    A call holds one of the instance's handlers (``FLOWS_CONCURRENCY``) for as long as its
    receiver takes, up to 8 s, and a tenant chooses the receiver: one workspace's slow
    receiver held every handler, and every other workspace's runs waited behind it. A
    workspace now holds at most ``limit`` of them; its next call is handed back to the
    stream (``WorkspaceBusyError``), which comes again once one ends."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.calls: dict[str, int] = {}

    def take(self, workspace: str) -> bool:
        held = self.calls.get(workspace, 0)
        if held >= self.limit:
            return False
        self.calls[workspace] = held + 1
        return True

    def give_back(self, workspace: str) -> None:
        held = self.calls.get(workspace, 0) - 1
        if held > 0:
            self.calls[workspace] = held
        else:
            self.calls.pop(workspace, None)


def schedule_subject(timer_id: str) -> str:
    """Where a timer's schedule waits (one schedule per subject) until the server fires it."""
    return f"cmd.flows.schedule.v1.{token(timer_id)}"


def content_of(effect: RunEffect) -> OutText | OutMedia:
    """What a send or campaign effect sends: its text, or its file with the text as the
    caption."""
    text, file = effect.data.get("text"), effect.data.get("media")
    if file is None:
        return OutText(text=text, parse_mode=effect.data.get("parse_mode"))
    source = MediaSource(url=file["url"], file_name=file.get("file_name"), size=file.get("size"))
    mode = effect.data.get("parse_mode") if text is not None else None
    return OutMedia(kind=file["kind"], source=source, caption=text, parse_mode=mode)


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
        content=content_of(effect),
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


HANDLING: ContextVar[Msg | None] = ContextVar("flows_handling", default=None)
"""The delivery being handled (set by the runner): kept in progress during a slow call."""


@contextlib.asynccontextmanager
async def keep_alive(every_s: float = 1.0) -> AsyncIterator[None]:
    """Tell the server the delivery being handled is in progress while a call runs, so a
    webhook slower than the consumer's ack wait is not redelivered to another instance."""
    msg = HANDLING.get()

    async def beat() -> None:
        while msg is not None:
            await asyncio.sleep(every_s)
            with contextlib.suppress(Exception):  # best effort: the ack wait still bounds it
                await msg.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        await cancel_and_wait([task])


def fold_facts(events: list[object]) -> ContactFacts:
    """A contact's facts from its own events and its lead's, each in stream order."""
    attributes: dict[str, Any] = {}
    tags: list[str] = []
    stage: str | None = None
    for ev in events:
        if isinstance(ev, ContactCreated):
            attributes.update(ev.attributes)
        elif isinstance(ev, ContactUpdated):
            attributes.update(ev.attributes)
            tags = [t for t in tags if t not in ev.tags_removed]
            tags += [t for t in ev.tags_added if t not in tags]
        elif isinstance(ev, LeadCreated):
            stage = ev.stage
        elif isinstance(ev, LeadStageChanged):
            stage = ev.to_stage
    attributes = {k: v for k, v in attributes.items() if v is not None}
    return ContactFacts(attributes=attributes, tags=tuple(tags), stage=stage)


def conversations(events: list[object]) -> list[FlowConversation]:
    """A contact's conversations from its events (identities created with it or linked)."""
    identities: list[Identity] = []
    name: str | None = None
    for ev in events:
        if isinstance(ev, ContactCreated):
            identities.extend(ev.identities)
            name = ev.display_name
        elif isinstance(ev, ContactIdentityLinked):
            identities.append(ev.identity)
            name = name or ev.display_name  # names a contact that had none, as the CRM does
        elif isinstance(ev, ContactUpdated) and ev.display_name:
            name = ev.display_name
    out: dict[tuple[str, str, str], FlowConversation] = {}
    for ident in identities:
        if ident.account is None:
            continue
        key = (ident.channel.value, ident.account, ident.external_id)
        out[key] = FlowConversation(
            channel=ident.channel,
            account=ident.account,
            chat_id=ident.external_id,
            sender_id=ident.external_id,
            first_name=name,
            username=ident.username,
        )
    return list(out.values())


def campaign_command(rec: RunRecorded, effect: RunEffect) -> StartSegmentCampaign:
    return StartSegmentCampaign(
        campaign_id=f"flow:{effect.id}",
        title=effect.data.get("title"),
        segment=CampaignSegment.model_validate(effect.data["segment"]),
        content=content_of(effect),
        by=f"flow:{rec.flow_id}",
    )


def answer_command(rec: RunRecorded, effect: RunEffect) -> AnswerCallback:
    conv = rec.conversation
    return AnswerCallback(
        request_id=f"flow:{effect.id}",
        channel=conv.channel,
        account=conv.account,
        callback_query_id=effect.data["callback_id"],
    )


class Effects:
    """Publishes the effects of recorded decisions (and makes their webhook calls)."""

    def __init__(
        self,
        bus: Bus,
        http: httpx.AsyncClient | None = None,
        secret_of: SecretOf | None = None,
        private: bool = False,
        share: WebhookShare | None = None,
    ) -> None:
        self.bus = bus
        self.http = http or httpx.AsyncClient(follow_redirects=False)
        # (workspace, name) -> the signing secret: a run signs with its workspace's only
        self.secret_of: SecretOf = secret_of or (lambda _ws, _name: None)
        self.private = private  # webhook steps may call private addresses (tests, in-cluster)
        self.share = share or WebhookShare(8)

    async def apply(self, rec: RunRecorded, cause: Envelope) -> list[Input]:
        """Carry out ``rec``'s effects; the inputs they produce (webhook results) are for
        the caller to decide on next."""
        follow: list[Input] = []
        for effect in rec.effects:
            if effect.kind == "send":
                await self.bus.publish(send_command(rec, effect), cause=cause)
            elif effect.kind == "campaign":
                await self.bus.publish(campaign_command(rec, effect), cause=cause)
            elif effect.kind == "answer":
                await self.bus.publish(answer_command(rec, effect), cause=cause)
            elif effect.kind == "timer":
                await self._schedule(timer_command(rec, effect), cause)
            elif effect.kind == "webhook":
                ws = cause.workspace_id
                if not self.share.take(ws):
                    # the decision is recorded: the input, redelivered, makes this call
                    raise WorkspaceBusyError(f"workspace {ws!r} holds its share of webhook calls")
                try:
                    async with keep_alive():
                        name = str(effect.data.get("secret"))
                        secret = self.secret_of(ws, name)
                        result = await webhooks.call(
                            self.http, secret, name, effect.id, effect.data, private=self.private
                        )
                finally:
                    self.share.give_back(ws)
                follow.append(
                    Input(
                        kind="webhook",
                        id=f"webhook:{effect.id}",
                        at=datetime.now(UTC),
                        timer_id=effect.id,
                        result=result,
                    )
                )
            else:
                await self._crm(rec, effect, cause)
        return follow

    async def _schedule(self, timer: FireTimer, cause: Envelope) -> None:
        enc = encode(timer, source=self.bus.source, cause=cause)
        headers = {
            **enc.headers,
            "Nats-Msg-Id": timer.deterministic_id(),
            **schedule_headers(timer.due_at, enc.subject),
        }
        await self.bus.publish_raw(schedule_subject(timer.timer_id), enc.body, headers)

    async def contact_of(self, rec: RunRecorded | FlowConversation, workspace: str) -> str:
        conv = rec.conversation if isinstance(rec, RunRecorded) else rec
        key = identity_key(conv.channel.value, conv.sender_id)
        _, stored = await claims.last_claim(workspace, key, self._last_claim)
        if stored is None or not isinstance(stored.decoded.model, IdentityClaimed):
            raise ContactUnknownError(f"the CRM has no contact for {conv.channel}:{conv.sender_id}")
        return stored.decoded.model.contact_id

    async def _last_claim(self, claim: str) -> Stored | None:
        return await last_stored(self.bus, "CRM", claims.claim_subject(claim))

    async def facts_of(self, conv: FlowConversation, workspace: str) -> ContactFacts:
        """The contact's attributes and tags and its lead's stage, folded from ``CRM``."""
        contact = await self.contact_of(conv, workspace)
        stored = await read_filter(self.bus, "CRM", f"crm.*.*.{token(contact)}")
        stored += await read_filter(self.bus, "CRM", f"crm.*.*.{token(first_lead_id(contact))}")
        return fold_facts([s.decoded.model for s in stored])

    async def conversations_of(self, contact_id: str) -> list[FlowConversation]:
        """The private conversations of a contact: one per identity on an account (a chat
        with a customer has the customer's own id on Telegram, Viber and WhatsApp)."""
        stored = await read_filter(self.bus, "CRM", f"crm.*.*.{token(contact_id)}")
        return conversations([s.decoded.model for s in stored])

    async def _crm(self, rec: RunRecorded, effect: RunEffect, cause: Envelope) -> None:
        contact = await self.contact_of(rec, cause.workspace_id)
        by = f"flow:{rec.flow_id}"
        command: UpdateContact | CreateLead | ChangeLeadStage | AssignLead
        lead = effect.data.get("lead_id") or first_lead_id(contact)
        if effect.kind == "attribute":
            command = UpdateContact(
                contact_id=contact, attributes=dict(effect.data.get("attributes", {})), by=by
            )
        elif effect.kind == "tag":
            command = UpdateContact(
                contact_id=contact,
                tags_added=tuple(effect.data.get("add", ())),
                tags_removed=tuple(effect.data.get("remove", ())),
                by=by,
            )
        elif effect.kind == "lead_stage" and effect.data.get("create"):
            command = CreateLead(
                lead_id=lead,
                contact_id=contact,
                stage=effect.data["stage"],
                source_channel=rec.conversation.channel,
                by=by,
            )
        elif effect.kind == "lead_stage":
            command = ChangeLeadStage(lead_id=lead, to_stage=effect.data["stage"], by=by)
        else:
            command = AssignLead(lead_id=lead, assignee=effect.data.get("assignee"), by=by)
        await self.bus.publish(command, cause=cause, id=f"flow:{effect.id}")
