"""The resolver's BSUID/phone linking on real NATS: a BSUID-only message, then one with the
phone beside the BSUID, links the phone to the same contact, in each workspace on its own
(the same person writing to two workspaces is two contacts, each with the phone)."""

from __future__ import annotations

from datetime import UTC, datetime

from switchboard.crm import keys
from switchboard.crm.resolver import Resolver
from switchboard.crm.settings import CrmSettings
from switchboard.crm.store import EventStore
from switchboard.events import Envelope
from switchboard.events.catalog.common import Channel, Chat, Sender
from switchboard.events.catalog.conv import MessageReceived, ProviderIds, TextContent
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BSUID, PHONE = "US.13491208655302741918", "16505551234"


def message(n: int, phone: str | None) -> MessageReceived:
    return MessageReceived(
        channel=Channel.WHATSAPP,
        account="wa1",
        chat=Chat(id=BSUID),
        sender=Sender(id=BSUID, phone=phone, display_name="Uma"),
        content=TextContent(text=f"m{n}"),
        provider=ProviderIds(message_id=f"wamid.{n}"),
        sent_at=NOW,
        received_at=NOW,
    )


def cause(n: int, workspace: str) -> Envelope:
    return Envelope(
        id=f"conv-{workspace}-{n}",
        type="switchboard.conv.message_received.v1",
        source="test",
        time=NOW,
        workspace_id=workspace,
    )


async def test_the_phone_beside_a_bsuid_links_per_workspace(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="resolver-test")
    try:
        await bus.provision()
        resolver = Resolver(
            EventStore(bus, pii.PiiKeys(await bus.kv(pii.BUCKET))),
            CrmSettings.model_construct(
                lead_rule="first_message_from_new_contact", stages=("new", "won")
            ),
        )
        contacts = {}
        for ws in ("acme", "globex"):
            first = await resolver.resolve(message(1, None), cause(1, ws))
            assert await resolver.owner(ws, keys.phone_key(PHONE)) is None
            second = await resolver.resolve(message(2, PHONE), cause(2, ws))
            assert second == first
            assert await resolver.owner(ws, keys.phone_key(PHONE)) == first
            # an old-style message with the phone alone is the same person
            legacy = message(3, PHONE).model_copy(update={"sender": Sender(id=PHONE, phone=PHONE)})
            assert await resolver.resolve(legacy, cause(3, ws)) == first
            contacts[ws] = first
        assert contacts["acme"] != contacts["globex"]
    finally:
        await bus.close()
