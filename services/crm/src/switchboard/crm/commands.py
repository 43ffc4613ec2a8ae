"""Commands on the CRM aggregates, shared by the HTTP API and the bus consumer.

One handler runs every command: it loads the aggregates the command names, lets the
command's pure decision (``decisions``) choose the events, and appends them with the
version it read. A stale ``expected_version`` is a 409; without one, a concurrent change
is retried on fresh state, so nothing is lost either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from switchboard.crm import decisions
from switchboard.crm.decisions import Context, Decision, RejectedError
from switchboard.crm.state import ContactState, LeadState, fold_contact, fold_lead
from switchboard.crm.store import Aggregate, ConflictError, EventStore
from switchboard.events import Command, Envelope, Event
from switchboard.events.catalog.crm import (
    AssignLead,
    ChangeLeadStage,
    CreateLead,
    EraseContact,
    MergeContacts,
    SplitContact,
    UpdateContact,
)
from switchboard.runtime import pii

__all__ = ["HANDLING", "Applied", "Context", "RejectedError", "execute"]

RETRIES = 5

C = TypeVar("C")


@dataclass(frozen=True)
class Applied:
    """What a command did: the aggregate, its new version and the event appended (if any)."""

    aggregate_id: str
    version: int
    event: Event | None


class Loaded:
    """The aggregates one command read, folded on demand."""

    def __init__(self, aggregates: Mapping[str, Aggregate]) -> None:
        self._aggregates = aggregates

    def lead(self, lead_id: str) -> LeadState | None:
        return fold_lead(self._aggregates[lead_id])

    def contact(self, contact_id: str) -> ContactState | None:
        return fold_contact(self._aggregates[contact_id])


class _LeadCommand(Protocol):
    @property
    def lead_id(self) -> str: ...

    @property
    def expected_version(self) -> int | None: ...


class _ContactCommand(Protocol):
    @property
    def contact_id(self) -> str: ...

    @property
    def expected_version(self) -> int | None: ...


def _none(cmd: Any) -> int | None:
    return None


@dataclass(frozen=True)
class Handling(Generic[C]):
    """How the handler runs one command type: the aggregates it reads, its decision, the
    version the caller expects (None: retry a conflict on fresh state), and what follows
    a decision that was appended or found in effect."""

    reads: Callable[[C], tuple[str, ...]]
    decide: Callable[[C, Loaded, Context], Decision]
    expected: Callable[[C], int | None] = _none
    after: Callable[[EventStore, C, Loaded, Context], Awaitable[None]] | None = None


async def _shred_erased(store: EventStore, cmd: EraseContact, loaded: Loaded, ctx: Context) -> None:
    """Purge the data keys of the erased identities and of the contact (crypto-shredding).
    Runs again when the erasure is repeated, so a crash between append and shred is
    finished by a retry."""
    contact = loaded.contact(cmd.contact_id)
    assert contact is not None  # the decision refused a missing contact
    shredder = pii.PiiKeys(await store.bus.kv(pii.BUCKET))
    for h in decisions.erased_identity_hashes(contact, ctx):
        await shredder.shred(pii.subject_of_hash(h))
    await shredder.shred(pii.contact_subject(ctx.workspace, contact.id))


L = TypeVar("L", bound=_LeadCommand)
K = TypeVar("K", bound=_ContactCommand)


def _on_lead(decide: Callable[[L, LeadState | None, Context], Decision]) -> Handling[L]:
    """A command on one lead, checked against the version its caller expects."""
    return Handling(
        reads=lambda c: (c.lead_id,),
        decide=lambda c, s, ctx: decide(c, s.lead(c.lead_id), ctx),
        expected=lambda c: c.expected_version,
    )


def _on_contact(decide: Callable[[K, ContactState | None, Context], Decision]) -> Handling[K]:
    """A command on one contact, checked against the version its caller expects."""
    return Handling(
        reads=lambda c: (c.contact_id,),
        decide=lambda c, s, ctx: decide(c, s.contact(c.contact_id), ctx),
        expected=lambda c: c.expected_version,
    )


# Every CRM command, by type: the generic handler's whole knowledge of them.
HANDLING: dict[type[Command], Handling[Any]] = {
    ChangeLeadStage: _on_lead(decisions.change_lead_stage),
    AssignLead: _on_lead(decisions.assign_lead),
    UpdateContact: _on_contact(decisions.update_contact),
    SplitContact: _on_contact(decisions.split_contact),
    # No expected version: an erasure is retried until it lands, whatever else changes;
    # the shredding follows (again) even when the contact was erased already.
    EraseContact: replace(
        _on_contact(decisions.erase_contact), expected=_none, after=_shred_erased
    ),
    # Expected version 0: of two racing creations one appends, the other sees it on retry.
    CreateLead: Handling[CreateLead](
        reads=lambda c: (c.lead_id, c.contact_id),
        decide=lambda c, s, ctx: decisions.create_lead(
            c, s.lead(c.lead_id), s.contact(c.contact_id), ctx
        ),
    ),
    MergeContacts: Handling[MergeContacts](
        reads=lambda c: (c.contact_id, c.merged_contact_id),
        decide=lambda c, s, ctx: decisions.merge_contacts(
            c, s.contact(c.contact_id), s.contact(c.merged_contact_id), ctx
        ),
        expected=lambda c: c.expected_version,
    ),
}


async def execute(
    store: EventStore, cmd: Command, ctx: Context, cause: Envelope | None = None
) -> Applied:
    """Load, decide and append ``cmd`` (retrying a concurrent change when it allows)."""
    handling = HANDLING.get(type(cmd))
    if handling is None:
        raise RejectedError(400, "unknown_command", f"{type(cmd).__name__} is not a CRM command")
    expected = handling.expected(cmd)
    for _ in range(RETRIES):
        loaded = Loaded({i: await store.load(i) for i in handling.reads(cmd)})
        decision = handling.decide(cmd, loaded, ctx)
        try:
            version = await _append(store, decision, ctx, cause)
        except ConflictError as exc:
            if expected is not None:
                raise RejectedError(
                    409,
                    "conflict",
                    f"{exc.aggregate} changed since version {expected}; reload and retry",
                ) from None
            continue
        if handling.after is not None:
            await handling.after(store, cmd, loaded, ctx)
        first = decision.events[0] if decision.events else None
        return Applied(decision.aggregate_id, version, first)
    raise RejectedError(409, "conflict", "too many concurrent changes; retry")


async def _append(
    store: EventStore, decision: Decision, ctx: Context, cause: Envelope | None
) -> int:
    """Append the decided events in order, each expecting the version the last one made."""
    version = decision.version
    for event in decision.events:
        version = await store.append(
            event, decision.aggregate_id, version, cause=cause, workspace_id=ctx.workspace
        )
    return version
