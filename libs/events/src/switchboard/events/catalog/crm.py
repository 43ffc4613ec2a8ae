"""CRM aggregate events (stream ``CRM``, kept forever: the source of truth for contacts and
leads). Subjects end with the aggregate id, so ``crm.*.*.<id>`` is one aggregate's history
and appends can use optimistic concurrency on it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from switchboard.events.base import Command, Event
from switchboard.events.catalog.common import Channel, Value
from switchboard.events.catalog.conv import Referral
from switchboard.events.catalog.outbound import CampaignId, Keyboard, OutContent, Priority
from switchboard.events.ids import stable_hash
from switchboard.events.registry import register


# Deterministic names in the CRM stream that other services look up (a contract, like the
# subjects): who owns an identity is the last ``crm.identity_claimed.v1.<claim key>``, and a
# contact's first lead has a fixed id. Claim keys are keyed with the deployment's identity
# pepper (``switchboard.runtime.claims.claim_key``: this catalog holds no secret).
def identity_key(channel: str, external_id: str) -> str:
    return f"{channel}:{external_id}"


def legacy_claim_key(workspace_id: str, key: str) -> str:
    """The unkeyed claim key of claims made before claim keys were keyed (an identity claimed
    then is still found under it). Never for a new claim: anyone can compute it from a phone."""
    return stable_hash("claim", workspace_id, key)


def first_lead_id(contact_id: str) -> str:
    return "ld_" + stable_hash("lead", contact_id, "first")[:24]


class Identity(Value):
    """One way to reach a person on a channel."""

    channel: Channel
    external_id: str = Field(min_length=1, description="provider user id / phone / viber id")
    account: str | None = None
    username: str | None = None
    phone: str | None = None


class _ContactChanges(BaseModel):
    """The changes to a contact the command asks for and the event records (same fields)."""

    display_name: str | None = None
    phone: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags_added: tuple[str, ...] = ()
    tags_removed: tuple[str, ...] = ()
    note: str | None = None


class _ContactEvent(Event):
    about: ClassVar[str] = "contact_id"

    contact_id: str = Field(min_length=1)


class _LeadEvent(Event):
    about: ClassVar[str] = "lead_id"

    lead_id: str = Field(min_length=1)


@register("crm.contact_created", 1)
class ContactCreated(_ContactEvent):
    """A new person became a contact, usually on their first message from an unknown identity."""

    display_name: str | None = None
    phone: str | None = None
    identities: tuple[Identity, ...] = Field(min_length=1)
    source_channel: Channel
    attributes: dict[str, Any] = Field(default_factory=dict)


@register("crm.contact_identity_linked", 1)
class ContactIdentityLinked(_ContactEvent):
    """Another channel identity was recognised as the same person (e.g. same phone)."""

    identity: Identity
    matched_by: str = Field(description="phone, username, manual, ...")
    display_name: str | None = Field(
        None, description="the name the identity shows; names a contact that has none"
    )


@register("crm.contact_updated", 1)
class ContactUpdated(_ContactChanges, _ContactEvent):
    """Attributes, tags or notes of a contact changed; only the listed keys changed."""


@register("crm.contact_merged", 1)
class ContactMerged(_ContactEvent):
    """``merged_contact_id`` was folded into ``contact_id``, which keeps everything."""

    merged_contact_id: str = Field(min_length=1)


@register("crm.contact_erased", 1)
class ContactErased(_ContactEvent):
    """The person's personal data must be removed from every projection, now and on rebuild."""

    requested_by: str | None = None
    identity_hashes: list[str] = Field(
        default_factory=list,
        description="keyed hashes (HMAC-SHA256 with the deployment's identity pepper) of "
        "'erased', workspace, channel and external id of each identity the contact had: "
        "services that keep records by recipient (outbound) find them without the ids",
    )


@register("crm.lead_created", 1)
class LeadCreated(_LeadEvent):
    """A lead opened for a contact (by rule, e.g. the first inbound message, or by hand)."""

    contact_id: str = Field(min_length=1)
    stage: str = Field(min_length=1)
    source_channel: Channel | None = None
    campaign_id: str | None = None
    value: Decimal | None = None
    currency: str | None = Field(None, min_length=3, max_length=3)
    assignee: str | None = None
    referral: Referral | None = Field(
        None, description="the ad or deep link the contact's first message came from"
    )


@register("crm.lead_stage_changed", 1)
class LeadStageChanged(_LeadEvent):
    """A lead moved from one stage to another."""

    contact_id: str = Field(min_length=1)
    from_stage: str
    to_stage: str = Field(min_length=1)
    by: str | None = None
    reason: str | None = None
    value: Decimal | None = None


@register("crm.lead_assigned", 1)
class LeadAssigned(_LeadEvent):
    """A lead got a new assignee (None: unassigned)."""

    assignee: str | None = None


@register("crm.identity_claimed", 1)
class IdentityClaimed(Event):
    """A channel identity (or a phone number) now belongs to a contact. Appended with
    expected-last-subject-sequence 0 on its own subject, so JetStream guarantees that one
    identity is claimed by exactly one contact, even with many resolvers racing."""

    claim_key: str = Field(min_length=1, description="hash of workspace + identity key")
    key: str = Field(min_length=1, description="'<channel>:<external id>' or 'phone:<digits>'")
    contact_id: str = Field(min_length=1)

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.claim_key,)

    def deterministic_id(self) -> str:
        return f"claim:{self.claim_key}"


@register("crm.contact_split", 1)
class ContactSplit(_ContactEvent):
    """An identity that was wrongly attached to ``contact_id`` now belongs to
    ``new_contact_id`` (created by this event if it did not exist)."""

    identity: Identity
    new_contact_id: str = Field(min_length=1)


class _ContactCommand(Command):
    contact_id: str = Field(min_length=1)
    expected_version: int | None = Field(None, ge=0, description="409 when the aggregate moved")
    by: str | None = None

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.contact_id,)


class _LeadCommand(Command):
    lead_id: str = Field(min_length=1)
    expected_version: int | None = Field(None, ge=0, description="409 when the aggregate moved")
    by: str | None = None

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.lead_id,)


@register("crm.change_lead_stage", 1)
class ChangeLeadStage(_LeadCommand):
    """Move a lead to another configured stage (optionally setting its value)."""

    to_stage: str = Field(min_length=1)
    reason: str | None = None
    value: Decimal | None = None


@register("crm.assign_lead", 1)
class AssignLead(_LeadCommand):
    """Give a lead to someone (None: unassigned)."""

    assignee: str | None = None


@register("crm.create_lead", 1)
class CreateLead(Command):
    """Open a lead ``lead_id`` for ``contact_id`` at ``stage``. The caller picks the id
    (deterministic, e.g. from its own effect id), so a redelivered or repeated command
    creates the lead once: the same lead again changes nothing, an id taken by another
    contact's lead is a 409."""

    lead_id: str = Field(min_length=1)
    contact_id: str = Field(min_length=1)
    stage: str = Field(min_length=1)
    assignee: str | None = None
    value: Decimal | None = None
    currency: str | None = Field(None, min_length=3, max_length=3)
    source_channel: Channel | None = None
    by: str | None = None

    def routing_tokens(self) -> tuple[str, ...]:
        return (self.lead_id,)


@register("crm.update_contact", 1)
class UpdateContact(_ContactChanges, _ContactCommand):
    """Change a contact's name, phone, attributes, tags or add a note."""


@register("crm.merge_contacts", 1)
class MergeContacts(_ContactCommand):
    """Fold ``merged_contact_id`` into ``contact_id``."""

    merged_contact_id: str = Field(min_length=1)


@register("crm.split_contact", 1)
class SplitContact(_ContactCommand):
    """Detach one identity from a contact into a contact of its own."""

    identity: Identity


@register("crm.erase_contact", 1)
class EraseContact(_ContactCommand):
    """Remove a person's personal data from every projection, now and on any rebuild."""


@register("crm.command_rejected", 1)
class CommandRejected(Event):
    """A command that arrived over the bus could not be applied (conflict, unknown id,
    invalid stage); ``command_id`` is the command's ce-id."""

    command_id: str = Field(min_length=1)
    command: str = Field(min_length=1)
    status: int = Field(description="the HTTP status the API would have answered")
    reason: str

    def routing_tokens(self) -> tuple[str, ...]:
        return ("rejected",)

    def deterministic_id(self) -> str:
        return f"rejected:{self.command_id}"


class CampaignSegment(Value):
    """Who a segment campaign goes to: people with a private conversation on ``channel``
    (and ``account``) whose contact has every tag in ``tags`` and a lead matching ``stage``
    and ``assignee`` (as ``POST /v1/campaigns`` reads its segment)."""

    channel: Channel
    account: str | None = Field(None, min_length=1)
    tags: tuple[str, ...] = ()
    stage: str | None = Field(None, min_length=1)
    assignee: str | None = Field(None, min_length=1)


@register("crm.start_campaign", 1)
class StartSegmentCampaign(Command):
    """Send one content to everyone in a CRM segment, over the bus (what ``POST
    /v1/campaigns`` does): the CRM expands the segment and hands the recipients to outbound
    as ``outbound.campaign_start`` and its batches. Idempotent by ``campaign_id``; a segment
    that cannot make a campaign (empty, unknown stage) is a ``crm.command_rejected``."""

    about: ClassVar[str] = "campaign_id"
    caller_keyed: ClassVar[bool] = True  # campaign ids are per workspace

    campaign_id: CampaignId
    title: str | None = Field(None, max_length=200)
    segment: CampaignSegment
    content: OutContent
    keyboard: Keyboard | None = None
    priority: Priority = Priority.BULK
    by: str | None = None

    def deterministic_id(self) -> str:
        return f"segment-campaign:{self.campaign_id}"


@register("crm.start_flow", 1)
class StartSegmentFlow(Command):
    """Start a flow in every conversation of a CRM segment (a flow's schedule trigger with a
    segment): the CRM expands the segment as a campaign's and hands the conversations back
    as ``flows.start_runs`` batches. Idempotent by ``request_id`` (each batch has an id of
    its own, and a run starts once per request and conversation)."""

    about: ClassVar[str] = "flow_id"
    caller_keyed: ClassVar[bool] = True  # request ids are per workspace

    request_id: str = Field(min_length=1, description="the schedule fire this is for")
    flow_id: str = Field(min_length=1)
    revision: int = Field(ge=1)
    segment: CampaignSegment
    by: str | None = None

    def deterministic_id(self) -> str:
        return f"segment-flow:{self.request_id}"
