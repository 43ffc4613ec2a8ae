"""The resolver's BSUID/phone linking on real NATS: a BSUID-only message, then one with the
phone beside the BSUID, links the phone to the same contact, in each workspace on its own
(the same person writing to two workspaces is two contacts, each with the phone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

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


@pytest.fixture
async def resolver(nats_url: str) -> AsyncIterator[Resolver]:
    """A resolver on the real bus, creating a lead for each new contact."""
    bus = await Bus.connect(nats_url, name="resolver-test")
    try:
        await bus.provision()
        yield Resolver(
            EventStore(bus, pii.PiiKeys(await bus.kv(pii.BUCKET))),
            CrmSettings.model_construct(
                lead_rule="first_message_from_new_contact", stages=("new", "won")
            ),
        )
    finally:
        await bus.close()


async def test_the_phone_beside_a_bsuid_links_per_workspace(resolver: Resolver) -> None:
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


def from_(channel: Channel, sender: str, phone: str, n: int) -> MessageReceived:
    return message(n, phone).model_copy(
        update={
            "channel": channel,
            "chat": Chat(id=sender),
            "sender": Sender(id=sender, phone=phone, display_name="Uma"),
        }
    )


async def test_two_channels_with_one_phone_resolved_at_once_are_one_contact(
    resolver: Resolver,
) -> None:
    """The resolver runs messages concurrently (``resolver_concurrency``): a WhatsApp message
    and a webhook message with the same phone resolved at the same time must still meet on the
    phone claim. Both used to pass the "who has this phone?" lookup before either claimed it,
    and the second founded its own contact (seen as a flaky phone merge in full runs)."""
    for n in range(10):
        phone = f"4917612345{n:03d}"
        wa, web = await asyncio.gather(
            resolver.resolve(from_(Channel.WHATSAPP, phone, phone, n), cause(n, "race")),
            resolver.resolve(
                from_(Channel.GENERIC, f"u-{n}", f"+{phone}", n + 100), cause(n + 100, "race")
            ),
        )
        assert wa == web, f"pair {n}: two contacts for one phone"
        assert await resolver.owner("race", keys.phone_key(phone)) == wa
