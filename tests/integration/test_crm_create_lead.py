"""``crm.create_lead`` on real NATS: racing and repeated creations of one lead id (a
redelivered command, two CRM instances) append ``crm.lead_created`` exactly once."""

from __future__ import annotations

import asyncio

from switchboard.crm import commands
from switchboard.crm.state import fold_lead
from switchboard.crm.store import EventStore
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import ContactCreated, CreateLead, Identity, LeadCreated
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus

STAGES = ("new", "qualified", "won")
CONTACT = ContactCreated(
    contact_id="ct_create_1",
    identities=(Identity(channel=Channel.TELEGRAM, external_id="9", account="demo"),),
    source_channel=Channel.TELEGRAM,
)
CMD = CreateLead(lead_id="ld_create_1", contact_id="ct_create_1", stage="qualified")


async def test_a_lead_is_created_once_however_often_the_command_comes(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="create-lead-test")
    try:
        await bus.provision()
        async with pii.using(bus) as keys:
            store = EventStore(bus, keys)
            await store.append(CONTACT, CONTACT.contact_id, 0, workspace_id="acme")
            raced = await asyncio.gather(
                *(commands.create_lead(store, CMD, "acme", STAGES) for _ in range(4))
            )
            again = await commands.create_lead(store, CMD, "acme", STAGES)
            stored = await store.load(CMD.lead_id)
    finally:
        await bus.close()
    assert [a.event is not None for a in raced].count(True) == 1
    assert again.event is None
    assert [type(d.model) for d in stored.events] == [LeadCreated]
    lead = fold_lead(stored)
    assert lead is not None
    assert (lead.contact_id, lead.stage, lead.workspace_id) == ("ct_create_1", "qualified", "acme")
