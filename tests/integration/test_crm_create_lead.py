"""CRM commands through the one generic handler on real NATS: racing and repeated
creations of one lead id (a redelivered command, two CRM instances) append
``crm.lead_created`` exactly once; racing updates without an expected version all land;
a stale expected version is a 409."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from switchboard.crm import commands
from switchboard.crm.commands import Context, RejectedError
from switchboard.crm.state import fold_lead
from switchboard.crm.store import EventStore
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import (
    ContactCreated,
    ContactUpdated,
    CreateLead,
    Identity,
    LeadCreated,
    UpdateContact,
)
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus

CTX = Context("acme", ("new", "qualified", "won"))
CONTACT = ContactCreated(
    contact_id="ct_create_1",
    identities=(Identity(channel=Channel.TELEGRAM, external_id="9", account="demo"),),
    source_channel=Channel.TELEGRAM,
)
CMD = CreateLead(lead_id="ld_create_1", contact_id="ct_create_1", stage="qualified")


@pytest.fixture
async def store(nats_url: str) -> AsyncIterator[EventStore]:
    """An event store on a fresh bus holding one contact of workspace ``acme``."""
    bus = await Bus.connect(nats_url, name="crm-commands-test")
    try:
        await bus.provision()
        async with pii.using(bus) as keys:
            events = EventStore(bus, keys)
            await events.append(CONTACT, CONTACT.contact_id, 0, workspace_id="acme")
            yield events
    finally:
        await bus.close()


async def test_a_lead_is_created_once_however_often_the_command_comes(store: EventStore) -> None:
    raced = await asyncio.gather(*(commands.execute(store, CMD, CTX) for _ in range(4)))
    again = await commands.execute(store, CMD, CTX)
    stored = await store.load(CMD.lead_id)
    assert [a.event is not None for a in raced].count(True) == 1
    assert again.event is None
    assert [type(d.model) for d in stored.events] == [LeadCreated]
    lead = fold_lead(stored)
    assert lead is not None
    assert (lead.contact_id, lead.stage, lead.workspace_id) == ("ct_create_1", "qualified", "acme")


async def test_racing_updates_all_land_and_a_stale_version_is_refused(store: EventStore) -> None:
    notes = [UpdateContact(contact_id=CONTACT.contact_id, note=f"note {n}") for n in range(4)]
    await asyncio.gather(*(commands.execute(store, cmd, CTX) for cmd in notes))
    stale = UpdateContact(contact_id=CONTACT.contact_id, note="late", expected_version=1)
    with pytest.raises(RejectedError) as refused:
        await commands.execute(store, stale, CTX)
    stored = await store.load(CONTACT.contact_id)
    assert (refused.value.status, refused.value.code) == (409, "conflict")
    updates = [d.model for d in stored.events if isinstance(d.model, ContactUpdated)]
    assert sorted(u.note or "" for u in updates) == [f"note {n}" for n in range(4)]
