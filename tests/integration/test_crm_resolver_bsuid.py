"""The resolver's BSUID/phone linking on real NATS: a BSUID-only message, then one with the
phone beside the BSUID, links the phone to the same contact, in each workspace on its own
(the same person writing to two workspaces is two contacts, each with the phone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.conv import received_envelope

from switchboard.crm import keys
from switchboard.crm.resolver import Resolver
from switchboard.crm.settings import CrmSettings
from switchboard.crm.store import EventStore, aggregate_filter
from switchboard.events import Envelope
from switchboard.events.catalog.common import Channel, Chat, Sender
from switchboard.events.catalog.conv import MessageReceived, ProviderIds, TextContent
from switchboard.events.catalog.crm import ContactCreated
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.failures import InfrastructureError

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
    return received_envelope(n, workspace, NOW)


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
            delivered(resolver, from_(Channel.WHATSAPP, phone, phone, n), cause(n, "race")),
            delivered(
                resolver,
                from_(Channel.GENERIC, f"u-{n}", f"+{phone}", n + 100),
                cause(n + 100, "race"),
            ),
        )
        assert wa == web, f"pair {n}: two contacts for one phone"
        assert await resolver.owner("race", keys.phone_key(phone)) == wa
        assert await _types(resolver.store, wa) == ["ContactCreated", "ContactIdentityLinked"]


async def delivered(resolver: Resolver, event: MessageReceived, env: Envelope) -> str:
    """Resolve as the consumer does: delivered again after a retryable failure."""
    while True:
        try:
            return await resolver.resolve(event, env)
        except InfrastructureError:
            await asyncio.sleep(0.01)  # the consumer's backoff, shortened


class _GatedStore(EventStore):
    """Holds every ``ContactCreated`` append until ``gate`` opens (``reached`` says one
    waits): the window between a founder's phone claim and its contact's creation."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store.bus, store.keys)
        self.gate, self.reached = asyncio.Event(), asyncio.Event()

    async def append(self, model: Any, aggregate_id: str, expected: int, **kw: Any) -> int:
        if isinstance(model, ContactCreated):
            self.reached.set()
            await self.gate.wait()
        return await super().append(model, aggregate_id, expected, **kw)


async def _types(store: EventStore, contact_id: str) -> list[str]:
    async with pii.using(store.bus):
        return [type(e.model).__name__ for e in (await store.load(contact_id)).events]


async def test_a_phone_match_never_links_before_the_founder_created_the_contact(
    resolver: Resolver,
) -> None:
    """A second identity with the founder's phone, resolved while the founder sits between its
    phone claim and its ``ContactCreated``, used to publish its link on the contact first: the
    founder's creation (expected at sequence 0) then conflicted, and the contact was never
    created (``/v1/contacts`` stayed empty in a CI run). The second message now waits for the
    contact (a retryable failure), and its redelivery links it."""
    store = _GatedStore(resolver.store)
    gated = Resolver(store, resolver.settings)
    phone = "4917611111111"
    founder = asyncio.create_task(
        gated.resolve(from_(Channel.WHATSAPP, phone, phone, 1), cause(1, "gate"))
    )
    await asyncio.wait_for(store.reached.wait(), 10)
    other = from_(Channel.GENERIC, "g-1", "+49 176 11111111", 2)
    with pytest.raises(InfrastructureError):
        await gated.resolve(other, cause(2, "gate"))
    store.gate.set()
    contact = await founder
    assert await gated.resolve(other, cause(2, "gate")) == contact  # the redelivery
    assert await _types(store, contact) == ["ContactCreated", "ContactIdentityLinked"]
    assert (await store.first(keys.first_lead_id(contact))) is not None


async def test_a_redelivery_links_an_identity_its_first_delivery_claimed_before_a_crash(
    resolver: Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phone match claims the identity, then links it: a crash between the two used to leave
    the identity claimed for the contact and never linked, because the redelivery found the
    claim and took it for someone else's."""
    phone = "4917622222222"
    contact = await resolver.resolve(from_(Channel.WHATSAPP, phone, phone, 1), cause(1, "crash"))
    other = from_(Channel.GENERIC, "g-2", f"+{phone}", 2)
    real = resolver._append_once

    async def crash(*args: Any, **kw: Any) -> None:
        raise ConnectionResetError("the process died here")

    monkeypatch.setattr(resolver, "_append_once", crash)
    with pytest.raises(ConnectionResetError):
        await resolver.resolve(other, cause(2, "crash"))
    monkeypatch.setattr(resolver, "_append_once", real)
    assert await resolver.resolve(other, cause(2, "crash")) == contact
    assert await _types(resolver.store, contact) == ["ContactCreated", "ContactIdentityLinked"]
    # and the link rests sealed like every other CRM event (it was published in the clear)
    link = await resolver.store.bus.js.get_last_msg("CRM", aggregate_filter(contact))
    assert phone not in (link.data or b"").decode()
    assert "g-2" not in (link.data or b"").decode()


async def test_the_next_message_of_a_resolved_sender_reads_nothing(
    resolver: Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolving a sender again changes nothing, so this process does not look their claims
    up again (the lookup was most of the resolver's work); a new phone beside the same id is
    resolved again, and links the phone."""
    phone = "4917633333333"
    first = await resolver.resolve(message(1, None), cause(1, "known"))
    reads: list[str] = []
    real_last = resolver.store.last

    async def counted(aggregate_id: str) -> Any:
        reads.append(aggregate_id)
        return await real_last(aggregate_id)

    monkeypatch.setattr(resolver.store, "last", counted)
    assert await resolver.resolve(message(2, None), cause(2, "known")) == first
    assert reads == []
    assert await resolver.resolve(message(3, phone), cause(3, "known")) == first
    assert reads != []
    assert await resolver.owner("known", keys.phone_key(phone)) == first
