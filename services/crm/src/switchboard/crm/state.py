"""Aggregate state folded from events: what commands validate against."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from switchboard.crm.store import Aggregate
from switchboard.events.catalog.crm import (
    ContactCreated,
    ContactErased,
    ContactIdentityLinked,
    ContactMerged,
    ContactSplit,
    ContactUpdated,
    Identity,
    LeadAssigned,
    LeadCreated,
    LeadStageChanged,
)


@dataclass
class LeadState:
    id: str
    workspace_id: str
    contact_id: str
    stage: str
    assignee: str | None
    value: Decimal | None
    version: int


@dataclass
class ContactState:
    id: str
    workspace_id: str
    identities: list[Identity] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    erased: bool = False
    version: int = 0


def fold_lead(agg: Aggregate) -> LeadState | None:
    state: LeadState | None = None
    for d in agg.events:
        ev = d.model
        if isinstance(ev, LeadCreated):
            state = LeadState(
                ev.lead_id,
                d.envelope.workspace_id,
                ev.contact_id,
                ev.stage,
                ev.assignee,
                ev.value,
                agg.version,
            )
        elif state is None:
            continue
        elif isinstance(ev, LeadStageChanged):
            state.stage = ev.to_stage
            state.value = ev.value if ev.value is not None else state.value
        elif isinstance(ev, LeadAssigned):
            state.assignee = ev.assignee
    return state


def fold_contact(agg: Aggregate) -> ContactState | None:
    state: ContactState | None = None
    for d in agg.events:
        ev = d.model
        if isinstance(ev, ContactCreated):
            state = ContactState(ev.contact_id, d.envelope.workspace_id, list(ev.identities))
        elif state is None:
            continue
        elif isinstance(ev, ContactIdentityLinked):
            state.identities.append(ev.identity)
        elif isinstance(ev, ContactSplit):
            state.identities = [i for i in state.identities if i != ev.identity]
        elif isinstance(ev, ContactMerged):
            state.merged.append(ev.merged_contact_id)
        elif isinstance(ev, ContactErased):
            state.erased = True
        elif isinstance(ev, ContactUpdated):
            pass
    if state is not None:
        state.version = agg.version
    return state
