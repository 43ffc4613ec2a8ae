"""Campaigns to a CRM segment: the segment is expanded from the projection into explicit
recipients, each pinned to the account the person wrote to (a chat exists only for that
bot or number), and handed to outbound as ``outbound.campaign_start`` (recipients batch 0)
followed by ``outbound.campaign_recipients`` batches.

The recipients are read from one snapshot (a repeatable-read transaction), so the count
and the account pool in the start command match the batches that follow. Commands are
idempotent by campaign id and batch number: a caller whose request failed half-way retries
with the same ``campaign_id`` (the segment is expanded again; batches outbound already
stored are kept as they were).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from switchboard.crm.errors import CrmServiceError
from switchboard.crm.queries import CHAT_PERSON, Filters
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import StartSegmentFlow
from switchboard.events.catalog.flows import FlowConversation, StartRuns
from switchboard.events.catalog.outbound import (
    MAX_CAMPAIGN_BATCH,
    AddCampaignRecipients,
    CampaignId,
    CampaignRecipient,
    Keyboard,
    OutContent,
    Priority,
    StartCampaign,
)
from switchboard.runtime.bus import Bus
from switchboard.runtime.db import Conn
from switchboard.runtime.fingerprint import body_fingerprint

MAX_ACCOUNTS = 100  # what one campaign's account pool may hold (outbound's limit)


class Segment(BaseModel):
    """Who gets the campaign: people with a private conversation on ``channel`` (and
    ``account``), whose contact has every tag in ``tags`` and a lead matching ``stage`` and
    ``assignee``, active since ``updated_since``. Erased people are never in a segment."""

    model_config = ConfigDict(extra="forbid")
    channel: Channel
    account: str | None = Field(None, min_length=1, description="one account of the channel")
    tags: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="the contact has all of them"
    )
    stage: str | None = Field(None, min_length=1, description="a lead of the contact is here")
    assignee: str | None = Field(None, min_length=1, description="... and assigned to them")
    updated_since: datetime | None = Field(
        None, description="the conversation's last message is this recent"
    )

    def describe(self) -> str:
        """The segment as outbound records it (``StartCampaign.segment``)."""
        return json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True)


class CampaignRequest(BaseModel):
    """``POST /v1/campaigns``: one content to everyone in a segment."""

    model_config = ConfigDict(extra="forbid")
    campaign_id: CampaignId | None = Field(
        None, description="your id for the campaign; retrying with it never sends twice"
    )
    title: str | None = Field(None, max_length=200)
    segment: Segment
    content: OutContent
    keyboard: Keyboard | None = None
    priority: Priority = Priority.BULK
    # With a timezone, as outbound requires (a naive time is a 422 naming the field here,
    # not a StartCampaign that fails to build after the segment was expanded).
    not_before: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None


@dataclass(frozen=True)
class Started:
    """What was handed to outbound."""

    campaign_id: str
    recipients: int
    batches: int
    accounts: list[str]


class SegmentError(CrmServiceError, ValueError):
    """The segment cannot make a campaign (nobody in it, too many accounts)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _where(ws: str, segment: Segment) -> tuple[str, list[Any]]:
    """The segment as SQL over conversations ``c`` and the person's contact ``p``."""
    f = Filters(ws, "c.workspace_id")
    f.add("c.channel = {}", segment.channel.value)
    f.where += ["c.chat_type = 'private'", "NOT p.erased", "p.merged_into IS NULL"]
    f.add_given(
        {
            "c.account = {}": segment.account,
            "c.last_message_at >= {}": segment.updated_since,
            "p.tags @> {}::text[]": sorted(set(segment.tags)),
        }
    )
    lead = {"l.stage = {}": segment.stage, "l.assignee = {}": segment.assignee}
    given = {clause: value for clause, value in lead.items() if value}
    if given:
        f.add(
            "EXISTS (SELECT 1 FROM leads l WHERE l.workspace_id = $1 AND l.contact_id = p.id"
            f" AND {' AND '.join(given)})",
            *given.values(),
        )
    return f.sql(), f.args


# A conversation's person: its identity's contact, or the contact that one was merged into.
_FROM = f"""FROM conversations c
{CHAT_PERSON}
JOIN contact_identities i ON i.workspace_id = c.workspace_id AND i.channel = c.channel
    AND i.external_id = person.chat_person
JOIN contacts ic ON ic.id = i.contact_id
JOIN contacts p ON p.id = COALESCE(ic.merged_into, ic.id)"""


async def expand(
    conn: Conn, ws: str, segment: Segment, chunk: int = MAX_CAMPAIGN_BATCH
) -> tuple[int, list[str], AsyncIterator[list[CampaignRecipient]]]:
    """(how many, which accounts, the recipients in chunks) of a segment, in a stable order.

    Call inside a repeatable-read transaction: the count and the chunks come from the same
    snapshot."""
    where, args = _where(ws, segment)
    row = await conn.fetchrow(
        f"SELECT count(*) AS n, array_agg(DISTINCT c.account) AS accounts {_FROM} WHERE {where}",
        *args,
    )
    assert row is not None
    total, accounts = int(row["n"]), sorted(row["accounts"] or [])

    async def chunks() -> AsyncIterator[list[CampaignRecipient]]:
        batch: list[CampaignRecipient] = []
        query = f"SELECT c.account, c.chat_id {_FROM} WHERE {where} ORDER BY c.account, c.chat_id"
        async for rec in conn.cursor(query, *args, prefetch=chunk):
            batch.append(CampaignRecipient(recipient=rec["chat_id"], account=rec["account"]))
            if len(batch) == chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    return total, accounts, chunks()


async def start_campaign(
    conn: Conn, bus: Bus, ws: str, request: CampaignRequest, chunk: int = MAX_CAMPAIGN_BATCH
) -> Started:
    """Expand the segment and publish the campaign's start and recipient batches (each
    stored by JetStream before the next is sent)."""
    campaign_id = request.campaign_id or f"cmp_{uuid.uuid4().hex}"
    fp = body_fingerprint("crm.campaign", request)
    claimed = request.campaign_id is not None and await _claim(conn, ws, campaign_id, fp)
    published: list[int] = []  # the batches out, as _publish goes
    try:
        started = await _publish(conn, bus, ws, request, campaign_id, chunk, published)
    except BaseException:
        # refused (an empty segment) or cut short before anything went out: the id is free
        # again for a corrected request; once a command is out, it is the first request's
        if claimed and not published:
            # best effort: the original failure is what the caller must hear (a database
            # gone away fails this too, and then the id stays this request's)
            with contextlib.suppress(Exception):
                await conn.execute(
                    "DELETE FROM campaign_requests WHERE workspace_id = $1 "
                    "AND campaign_id = $2 AND fingerprint = $3",
                    ws, campaign_id, fp,
                )  # fmt: skip
        raise
    return started


async def _claim(conn: Conn, ws: str, campaign_id: str, fp: str) -> bool:
    """Take ``campaign_id`` for the request ``fp`` (True: taken now); a SegmentError
    (idempotency_conflict) when another request has it."""
    taken = await conn.fetchval(
        "INSERT INTO campaign_requests (workspace_id, campaign_id, fingerprint) "
        "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true",
        ws, campaign_id, fp,
    )  # fmt: skip
    if taken:
        return True
    first = await conn.fetchval(
        "SELECT fingerprint FROM campaign_requests WHERE workspace_id = $1 AND campaign_id = $2",
        ws, campaign_id,
    )  # fmt: skip
    if first is not None and first != fp:
        raise SegmentError(
            "idempotency_conflict",
            f"campaign {campaign_id!r} was started with another request; "
            "start other content or another segment under a new campaign_id",
        )
    return False


async def _publish(
    conn: Conn,
    bus: Bus,
    ws: str,
    request: CampaignRequest,
    campaign_id: str,
    chunk: int,
    published: list[int],
) -> Started:
    """Expand the segment and publish the start and recipient batches (noting each one
    out in ``published``)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        total, accounts, chunks = await expand(conn, ws, request.segment, chunk)
        if total == 0:
            raise SegmentError("empty_segment", "nobody in the workspace matches the segment")
        if len(accounts) > MAX_ACCOUNTS:
            raise SegmentError(
                "too_many_accounts",
                f"the segment spans {len(accounts)} accounts; a campaign sends through at "
                f"most {MAX_ACCOUNTS}: narrow it by account",
            )
        batches = -(-total // chunk)
        number = 0
        async for recipients in chunks:
            final = number == batches - 1
            if number == 0:
                command: StartCampaign | AddCampaignRecipients = StartCampaign(
                    campaign_id=campaign_id,
                    title=request.title,
                    channel=request.segment.channel,
                    accounts=tuple(accounts),
                    content=request.content,
                    keyboard=request.keyboard,
                    priority=request.priority,
                    recipients=tuple(recipients),
                    final=final,
                    expected_total=total,
                    segment=request.segment.describe(),
                    not_before=request.not_before,
                    expires_at=request.expires_at,
                )
            else:
                command = AddCampaignRecipients(
                    campaign_id=campaign_id,
                    batch=number,
                    recipients=tuple(recipients),
                    final=final,
                )
            await bus.publish(command, workspace_id=ws)
            published.append(number)
            number += 1
    return Started(campaign_id, total, batches, accounts)


FLOW_BATCH = 500  # conversations per ``flows.start_runs`` (well under a message's size limit)


def flow_batch(
    cmd: StartSegmentFlow, number: int, recipients: list[CampaignRecipient], final: bool
) -> StartRuns:
    """One batch of a segment's conversations for the flow ``cmd`` starts: a private chat's
    id is its customer's id (as a contact's identities give it)."""
    return StartRuns(
        request_id=cmd.request_id,
        flow_id=cmd.flow_id,
        revision=cmd.revision,
        batch=number,
        conversations=tuple(
            FlowConversation(
                channel=cmd.segment.channel,
                account=r.account,
                chat_id=r.recipient,
                sender_id=r.recipient,
            )
            for r in recipients
            if r.account  # always: a segment's conversations are each on their account
        ),
        final=final,
    )


async def start_flow(
    conn: Conn, bus: Bus, ws: str, cmd: StartSegmentFlow, chunk: int = FLOW_BATCH
) -> int:
    """Expand the segment and hand its conversations to flows in batches; how many. An
    empty segment starts nothing (a schedule that finds nobody is not an error)."""
    segment = Segment.model_validate(cmd.segment.model_dump())
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        total, _, chunks = await expand(conn, ws, segment, chunk)
        batches = -(-total // chunk)
        number = 0
        async for recipients in chunks:
            final = number == batches - 1
            await bus.publish(flow_batch(cmd, number, recipients, final), workspace_id=ws)
            number += 1
    return total
