"""Commands on the CRM aggregates, shared by the HTTP API and the bus consumer.

Each loads the aggregate from the stream, validates against its folded state, and appends
with the version it read. A stale ``expected_version`` is a 409; without one, a concurrent
change is retried on fresh state, so nothing is lost either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from switchboard.crm import keys
from switchboard.crm.state import ContactState, LeadState, fold_contact, fold_lead
from switchboard.crm.store import ConflictError, EventStore
from switchboard.events import Envelope, Event
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
from switchboard.runtime import pii

RETRIES = 5


class RejectedError(Exception):
    """The command cannot be applied: ``status`` is the HTTP answer (404, 409, 422)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Applied:
    """What a command did: the aggregate, its new version and the event appended (if any)."""

    aggregate_id: str
    version: int
    event: Event | None


async def _lead(store: EventStore, lead_id: str, workspace: str) -> LeadState:
    state = fold_lead(await store.load(lead_id))
    if state is None or state.workspace_id != workspace:
        raise RejectedError(404, "not_found", f"no lead {lead_id!r}")
    return state


async def _contact(store: EventStore, contact_id: str, workspace: str) -> ContactState:
    state = fold_contact(await store.load(contact_id))
    if state is None or state.workspace_id != workspace:
        raise RejectedError(404, "not_found", f"no contact {contact_id!r}")
    if state.erased:
        raise RejectedError(410, "erased", f"contact {contact_id!r} was erased")
    return state


async def _with_retries(expected: int | None, attempt: Callable[[], Awaitable[Applied]]) -> Applied:
    for _ in range(RETRIES):
        try:
            return await attempt()
        except ConflictError as exc:
            if expected is not None:
                raise RejectedError(
                    409,
                    "conflict",
                    f"{exc.aggregate} changed since version {expected}; reload and retry",
                ) from None
    raise RejectedError(409, "conflict", "too many concurrent changes; retry")


def _check_version(expected: int | None, current: int, what: str) -> None:
    if expected is not None and expected != current:
        raise RejectedError(409, "conflict", f"{what} is at version {current}, not {expected}")


async def change_lead_stage(
    store: EventStore,
    cmd: ChangeLeadStage,
    workspace: str,
    stages: tuple[str, ...],
    cause: Envelope | None = None,
) -> Applied:
    if cmd.to_stage not in stages:
        raise RejectedError(
            422, "invalid_stage", f"stage {cmd.to_stage!r} is not one of {', '.join(stages)}"
        )

    async def attempt() -> Applied:
        lead = await _lead(store, cmd.lead_id, workspace)
        _check_version(cmd.expected_version, lead.version, f"lead {cmd.lead_id}")
        if lead.stage == cmd.to_stage and (cmd.value is None or cmd.value == lead.value):
            return Applied(lead.id, lead.version, None)  # already there: idempotent
        event = LeadStageChanged(
            lead_id=lead.id,
            contact_id=lead.contact_id,
            from_stage=lead.stage,
            to_stage=cmd.to_stage,
            by=cmd.by,
            reason=cmd.reason,
            value=cmd.value,
        )
        seq = await store.append(event, lead.id, lead.version, cause=cause, workspace_id=workspace)
        return Applied(lead.id, seq, event)

    return await _with_retries(cmd.expected_version, attempt)


def decide_create_lead(
    cmd: CreateLead,
    lead: LeadState | None,
    contact: ContactState | None,
    workspace: str,
    stages: tuple[str, ...],
) -> LeadCreated | None:
    """The ``crm.lead_created`` that ``cmd`` appends, or None when that lead exists already
    (a repeated command: idempotent by the caller's lead id)."""
    if cmd.stage not in stages:
        raise RejectedError(
            422, "invalid_stage", f"stage {cmd.stage!r} is not one of {', '.join(stages)}"
        )
    if lead is not None:
        if lead.workspace_id == workspace and lead.contact_id == cmd.contact_id:
            return None
        raise RejectedError(409, "lead_exists", f"lead {cmd.lead_id!r} belongs to another contact")
    if contact is None or contact.workspace_id != workspace:
        raise RejectedError(404, "not_found", f"no contact {cmd.contact_id!r}")
    if contact.erased:
        raise RejectedError(410, "erased", f"contact {cmd.contact_id!r} was erased")
    return LeadCreated(
        lead_id=cmd.lead_id,
        contact_id=cmd.contact_id,
        stage=cmd.stage,
        source_channel=cmd.source_channel,
        value=cmd.value,
        currency=cmd.currency,
        assignee=cmd.assignee,
    )


async def create_lead(
    store: EventStore,
    cmd: CreateLead,
    workspace: str,
    stages: tuple[str, ...],
    cause: Envelope | None = None,
) -> Applied:
    async def attempt() -> Applied:
        lead = fold_lead(await store.load(cmd.lead_id))
        contact = fold_contact(await store.load(cmd.contact_id))
        event = decide_create_lead(cmd, lead, contact, workspace, stages)
        if event is None:
            assert lead is not None
            return Applied(lead.id, lead.version, None)
        # Expected version 0: of two racing creations one appends, the other sees it on retry.
        seq = await store.append(event, cmd.lead_id, 0, cause=cause, workspace_id=workspace)
        return Applied(cmd.lead_id, seq, event)

    return await _with_retries(None, attempt)


async def assign_lead(
    store: EventStore, cmd: AssignLead, workspace: str, cause: Envelope | None = None
) -> Applied:
    async def attempt() -> Applied:
        lead = await _lead(store, cmd.lead_id, workspace)
        _check_version(cmd.expected_version, lead.version, f"lead {cmd.lead_id}")
        if lead.assignee == cmd.assignee:
            return Applied(lead.id, lead.version, None)
        event = LeadAssigned(lead_id=lead.id, assignee=cmd.assignee)
        seq = await store.append(event, lead.id, lead.version, cause=cause, workspace_id=workspace)
        return Applied(lead.id, seq, event)

    return await _with_retries(cmd.expected_version, attempt)


async def update_contact(
    store: EventStore, cmd: UpdateContact, workspace: str, cause: Envelope | None = None
) -> Applied:
    async def attempt() -> Applied:
        contact = await _contact(store, cmd.contact_id, workspace)
        _check_version(cmd.expected_version, contact.version, f"contact {cmd.contact_id}")
        event = ContactUpdated(
            contact_id=contact.id,
            display_name=cmd.display_name,
            phone=keys.normalize_phone(cmd.phone) if cmd.phone else None,
            attributes=cmd.attributes,
            tags_added=cmd.tags_added,
            tags_removed=cmd.tags_removed,
            note=cmd.note,
        )
        seq = await store.append(
            event, contact.id, contact.version, cause=cause, workspace_id=workspace
        )
        return Applied(contact.id, seq, event)

    return await _with_retries(cmd.expected_version, attempt)


async def merge_contacts(
    store: EventStore, cmd: MergeContacts, workspace: str, cause: Envelope | None = None
) -> Applied:
    if cmd.merged_contact_id == cmd.contact_id:
        raise RejectedError(422, "same_contact", "a contact cannot be merged into itself")

    async def attempt() -> Applied:
        survivor = await _contact(store, cmd.contact_id, workspace)
        await _contact(store, cmd.merged_contact_id, workspace)
        _check_version(cmd.expected_version, survivor.version, f"contact {cmd.contact_id}")
        if cmd.merged_contact_id in survivor.merged:
            return Applied(survivor.id, survivor.version, None)
        event = ContactMerged(contact_id=survivor.id, merged_contact_id=cmd.merged_contact_id)
        seq = await store.append(
            event, survivor.id, survivor.version, cause=cause, workspace_id=workspace
        )
        return Applied(survivor.id, seq, event)

    return await _with_retries(cmd.expected_version, attempt)


async def split_contact(
    store: EventStore, cmd: SplitContact, workspace: str, cause: Envelope | None = None
) -> Applied:
    async def attempt() -> Applied:
        contact = await _contact(store, cmd.contact_id, workspace)
        _check_version(cmd.expected_version, contact.version, f"contact {cmd.contact_id}")
        match = [
            i
            for i in contact.identities
            if (i.channel, i.external_id) == (cmd.identity.channel, cmd.identity.external_id)
        ]
        if not match:
            raise RejectedError(
                422, "unknown_identity", "that identity does not belong to this contact"
            )
        if len(contact.identities) < 2:
            raise RejectedError(422, "last_identity", "cannot split a contact's only identity")
        new_id = (
            "ct_"
            + keys.claim_key(
                workspace,
                f"split:{contact.id}:{cmd.identity.channel.value}:{cmd.identity.external_id}",
            )[:24]
        )
        event = ContactSplit(contact_id=contact.id, identity=match[0], new_contact_id=new_id)
        seq = await store.append(
            event, contact.id, contact.version, cause=cause, workspace_id=workspace
        )
        return Applied(contact.id, seq, event)

    return await _with_retries(cmd.expected_version, attempt)


async def erase_contact(
    store: EventStore, cmd: EraseContact, workspace: str, cause: Envelope | None = None
) -> Applied:
    """Append ``crm.contact_erased`` (with the keyed hashes of the contact's identities)
    and shred the identities' data keys. Repeating the erasure of an erased contact shreds
    again, so a crash between the two is finished by a retry."""

    def hashes(state: ContactState) -> list[str]:
        return sorted(
            {keys.erased_identity_hash(workspace, i.channel.value, i.external_id)
             for i in state.identities}
        )  # fmt: skip

    async def attempt() -> Applied:
        state = fold_contact(await store.load(cmd.contact_id))
        if state is None or state.workspace_id != workspace:
            raise RejectedError(404, "not_found", f"no contact {cmd.contact_id!r}")
        if state.erased:
            await _shred(store, workspace, state.id, hashes(state))
            return Applied(state.id, state.version, None)
        event = ContactErased(
            contact_id=state.id, requested_by=cmd.by, identity_hashes=hashes(state)
        )
        seq = await store.append(
            event, state.id, state.version, cause=cause, workspace_id=workspace
        )
        await _shred(store, workspace, state.id, event.identity_hashes)
        return Applied(state.id, seq, event)

    # No expected version: an erasure is retried until it lands, whatever else changes.
    return await _with_retries(None, attempt)


async def _shred(
    store: EventStore, workspace: str, contact_id: str, identity_hashes: list[str]
) -> None:
    """Purge the data keys of the erased identities and of the contact (crypto-shredding)."""
    shredder = pii.PiiKeys(await store.bus.kv(pii.BUCKET))
    for h in identity_hashes:
        await shredder.shred(pii.subject_of_hash(h))
    await shredder.shred(pii.contact_subject(workspace, contact_id))
