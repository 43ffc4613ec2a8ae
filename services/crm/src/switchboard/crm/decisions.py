"""What each CRM command decides over the state of the aggregates it names: pure functions.

A decision is the events to append to one aggregate at the version it was read at, or none
when the command is already in effect (a repeated command changes nothing). A command
that cannot be applied raises ``RejectedError`` with the HTTP status that answers it.
Loading, appending and retrying are ``commands.execute``'s, the same for every command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from switchboard.crm import keys
from switchboard.crm.errors import CrmServiceError
from switchboard.crm.limits import over_limits
from switchboard.crm.state import ContactState, LeadState
from switchboard.events import Event
from switchboard.events.catalog.crm import (
    AssignLead,
    ChangeLeadStage,
    ContactErased,
    ContactMerged,
    ContactSplit,
    ContactUpdated,
    CreateLead,
    EraseContact,
    LeadAssigned,
    LeadCreated,
    LeadStageChanged,
    MergeContacts,
    SplitContact,
    UpdateContact,
)


class RejectedError(CrmServiceError):
    """The command cannot be applied: ``status`` is the HTTP answer (404, 409, 410, 422)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Context:
    """What decisions need besides the state: the caller's workspace, the lead stages, and
    for a merge which of its contacts the read model shows merged into another (a merge
    is recorded on the survivor's stream only, so the merged contact's own state does not
    say it is gone)."""

    workspace: str
    stages: tuple[str, ...] = ()
    merged_into: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """Append ``events`` to ``aggregate_id``, expected at ``version``; no events: the
    command is already in effect."""

    aggregate_id: str
    version: int
    events: tuple[Event, ...] = ()


def _lead(lead: LeadState | None, lead_id: str, ctx: Context) -> LeadState:
    if lead is None or lead.workspace_id != ctx.workspace:
        raise RejectedError(404, "not_found", f"no lead {lead_id!r}")
    return lead


def _contact(contact: ContactState | None, contact_id: str, ctx: Context) -> ContactState:
    if contact is None or contact.workspace_id != ctx.workspace:
        raise RejectedError(404, "not_found", f"no contact {contact_id!r}")
    if contact.erased:
        raise RejectedError(410, "erased", f"contact {contact_id!r} was erased")
    return contact


def _check_version(expected: int | None, current: int, what: str) -> None:
    if expected is not None and expected != current:
        raise RejectedError(409, "conflict", f"{what} is at version {current}, not {expected}")


def _check_stage(stage: str, ctx: Context) -> None:
    if stage not in ctx.stages:
        raise RejectedError(
            422, "invalid_stage", f"stage {stage!r} is not one of {', '.join(ctx.stages)}"
        )


def change_lead_stage(cmd: ChangeLeadStage, lead: LeadState | None, ctx: Context) -> Decision:
    """``crm.lead_stage_changed``, unless the lead is at that stage (and value) already."""
    _check_stage(cmd.to_stage, ctx)
    found = _lead(lead, cmd.lead_id, ctx)
    _check_version(cmd.expected_version, found.version, f"lead {cmd.lead_id}")
    if found.stage == cmd.to_stage and (cmd.value is None or cmd.value == found.value):
        return Decision(found.id, found.version)
    event = LeadStageChanged(
        lead_id=found.id,
        contact_id=found.contact_id,
        from_stage=found.stage,
        to_stage=cmd.to_stage,
        by=cmd.by,
        reason=cmd.reason,
        value=cmd.value,
    )
    return Decision(found.id, found.version, (event,))


def assign_lead(cmd: AssignLead, lead: LeadState | None, ctx: Context) -> Decision:
    """``crm.lead_assigned``, unless the lead has that assignee already."""
    found = _lead(lead, cmd.lead_id, ctx)
    _check_version(cmd.expected_version, found.version, f"lead {cmd.lead_id}")
    if found.assignee == cmd.assignee:
        return Decision(found.id, found.version)
    return Decision(
        found.id, found.version, (LeadAssigned(lead_id=found.id, assignee=cmd.assignee),)
    )


def create_lead(
    cmd: CreateLead, lead: LeadState | None, contact: ContactState | None, ctx: Context
) -> Decision:
    """``crm.lead_created`` at version 0 (of two racing creations one appends, the other
    sees the lead on retry); nothing when this lead of this contact exists already."""
    _check_stage(cmd.stage, ctx)
    if lead is not None:
        if lead.workspace_id == ctx.workspace and lead.contact_id == cmd.contact_id:
            return Decision(lead.id, lead.version)
        raise RejectedError(409, "lead_exists", f"lead {cmd.lead_id!r} belongs to another contact")
    _contact(contact, cmd.contact_id, ctx)
    event = LeadCreated(
        lead_id=cmd.lead_id,
        contact_id=cmd.contact_id,
        stage=cmd.stage,
        source_channel=cmd.source_channel,
        value=cmd.value,
        currency=cmd.currency,
        assignee=cmd.assignee,
    )
    return Decision(cmd.lead_id, 0, (event,))


def update_contact(cmd: UpdateContact, contact: ContactState | None, ctx: Context) -> Decision:
    """``crm.contact_updated`` with the phone normalized (every update is recorded)."""
    found = _contact(contact, cmd.contact_id, ctx)
    _check_version(cmd.expected_version, found.version, f"contact {cmd.contact_id}")
    if (over := over_limits(cmd.model_dump())) is not None:  # a bus command's: too large
        raise RejectedError(422, "too_large", over)
    event = ContactUpdated(
        contact_id=found.id,
        display_name=cmd.display_name,
        phone=keys.normalize_phone(cmd.phone) if cmd.phone else None,
        attributes=cmd.attributes,
        tags_added=cmd.tags_added,
        tags_removed=cmd.tags_removed,
        note=cmd.note,
    )
    return Decision(found.id, found.version, (event,))


def merge_contacts(
    cmd: MergeContacts,
    survivor: ContactState | None,
    merged: ContactState | None,
    ctx: Context,
) -> Decision:
    """``crm.contact_merged`` on the survivor, unless it absorbed that contact already."""
    if cmd.merged_contact_id == cmd.contact_id:
        raise RejectedError(422, "same_contact", "a contact cannot be merged into itself")
    found = _contact(survivor, cmd.contact_id, ctx)
    other = _contact(merged, cmd.merged_contact_id, ctx)
    _check_version(cmd.expected_version, found.version, f"contact {cmd.contact_id}")
    if cmd.merged_contact_id in found.merged:
        return Decision(found.id, found.version)
    # A merged contact is gone: merging it again, or into it, would fold the survivor
    # into itself (the projection moves every contact merged into the merged one) and
    # both would vanish from every list.
    into = dict(ctx.merged_into)
    if found.id in other.merged:
        into[found.id] = other.id
    for gone in (found.id, other.id):
        if gone in into:
            raise RejectedError(
                409, "merged_away", f"contact {gone} was merged into {into[gone]}; use that one"
            )
    event = ContactMerged(contact_id=found.id, merged_contact_id=cmd.merged_contact_id)
    return Decision(found.id, found.version, (event,))


def split_contact(cmd: SplitContact, contact: ContactState | None, ctx: Context) -> Decision:
    """``crm.contact_split``: the identity moves to a contact whose id is derived from it,
    so splitting the same identity again names the same new contact."""
    found = _contact(contact, cmd.contact_id, ctx)
    _check_version(cmd.expected_version, found.version, f"contact {cmd.contact_id}")
    wanted = (cmd.identity.channel, cmd.identity.external_id)
    match = [i for i in found.identities if (i.channel, i.external_id) == wanted]
    if not match:
        raise RejectedError(
            422, "unknown_identity", "that identity does not belong to this contact"
        )
    if len(found.identities) < 2:
        raise RejectedError(422, "last_identity", "cannot split a contact's only identity")
    claim = f"split:{found.id}:{cmd.identity.channel.value}:{cmd.identity.external_id}"
    new_id = "ct_" + keys.claim_key(ctx.workspace, claim)[:24]
    event = ContactSplit(contact_id=found.id, identity=match[0], new_contact_id=new_id)
    return Decision(found.id, found.version, (event,))


def erase_contact(cmd: EraseContact, contact: ContactState | None, ctx: Context) -> Decision:
    """``crm.contact_erased`` with the keyed hashes of the contact's identities; nothing
    when it is erased already (the shredding that follows is repeated either way)."""
    if contact is None or contact.workspace_id != ctx.workspace:
        raise RejectedError(404, "not_found", f"no contact {cmd.contact_id!r}")
    if contact.erased:
        return Decision(contact.id, contact.version)
    event = ContactErased(
        contact_id=contact.id,
        requested_by=cmd.by,
        identity_hashes=erased_identity_hashes(contact, ctx),
    )
    return Decision(contact.id, contact.version, (event,))


def erased_identity_hashes(contact: ContactState, ctx: Context) -> list[str]:
    """The keyed hashes that stand for the contact's identities once it is erased."""
    return sorted(
        {keys.erased_identity_hash(ctx.workspace, i.channel.value, i.external_id)
         for i in contact.identities}
    )  # fmt: skip
