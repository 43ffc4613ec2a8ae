"""Which first messages open a lead, on real NATS. Found on `just up`: a user account that
read a news channel made the channel a contact with a sales lead ``new``, and every member
of a group it reads would have been one too. Under the default ``first_private_message``
a channel's post or a group message makes a contact and no lead; the contact's first
one-to-one message opens it later (once, even from another instance), and a contact that
absorbed others by a merge gets no second lead. ``first_message_from_new_contact`` keeps
counting any chat."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from tests.support.conv import received_envelope

from switchboard.crm import keys
from switchboard.crm.resolver import Resolver
from switchboard.crm.settings import CrmSettings
from switchboard.crm.store import EventStore
from switchboard.events.catalog.common import Channel, Chat, ChatType, Sender
from switchboard.events.catalog.conv import MessageReceived, ProviderIds, TextContent
from switchboard.events.catalog.crm import ContactMerged, LeadCreated
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
WS = "leads"


def message(n: int, sender: str, chat: Chat, channel: Channel = Channel.MTPROTO) -> MessageReceived:
    return MessageReceived(
        channel=channel,
        account="sales-1",
        chat=chat,
        sender=Sender(id=sender, display_name=f"who {sender}"),
        content=TextContent(text=f"m{n}"),
        provider=ProviderIds(message_id=str(n)),
        sent_at=NOW,
        received_at=NOW,
    )


NEWS = Chat(id="-1007000359960", type=ChatType.CHANNEL, title="News")
GROUP = Chat(id="-4001", type=ChatType.GROUP, title="Buyers")


def private(user: str) -> Chat:
    return Chat(id=user, type=ChatType.PRIVATE)


ResolverOf = Callable[[str], Resolver]


@pytest.fixture
async def resolver_of(nats_url: str) -> AsyncIterator[ResolverOf]:
    """A new resolver (another instance: nothing cached) under a lead rule, on one bus."""
    bus = await Bus.connect(nats_url, name="lead-rule-test")
    try:
        await bus.provision()
        async with pii.using(bus) as sealing:  # as the CRM's start installs it
            store = EventStore(bus, sealing)

            def make(rule: str) -> Resolver:
                settings = CrmSettings.model_construct(lead_rule=rule, stages=("new", "won"))
                return Resolver(store, settings)

            yield make
    finally:
        await bus.close()


async def leads(resolver: Resolver, contact: str) -> list[LeadCreated]:
    aggregate = await resolver.store.load(keys.first_lead_id(contact))
    return [e.model for e in aggregate.events if isinstance(e.model, LeadCreated)]


async def test_a_channel_read_and_a_group_make_contacts_without_leads(
    resolver_of: ResolverOf,
) -> None:
    resolver = resolver_of("first_private_message")
    channel = await resolver.resolve(message(1, NEWS.id, NEWS), received_envelope(1, WS))
    member = await resolver.resolve(message(2, "7001", GROUP), received_envelope(2, WS))
    assert await leads(resolver, channel) == []
    assert await leads(resolver, member) == []
    # a new person writing one-to-one: a lead, as before
    buyer = await resolver.resolve(message(3, "7002", private("7002")), received_envelope(3, WS))
    assert [lead.contact_id for lead in await leads(resolver, buyer)] == [buyer]


async def test_the_first_private_message_of_a_group_member_opens_the_lead_once(
    resolver_of: ResolverOf,
) -> None:
    first = resolver_of("first_private_message")
    member = await first.resolve(message(10, "7010", GROUP), received_envelope(10, WS))
    assert await leads(first, member) == []
    again = await first.resolve(message(11, "7010", private("7010")), received_envelope(11, WS))
    assert again == member
    opened = await leads(first, member)
    assert [(lead.contact_id, lead.stage) for lead in opened] == [(member, "new")]
    # more private messages, here and on another instance that knows nothing: still one
    await first.resolve(message(12, "7010", private("7010")), received_envelope(12, WS))
    other = resolver_of("first_private_message")
    await other.resolve(message(13, "7010", private("7010")), received_envelope(13, WS))
    assert len(await leads(other, member)) == 1


async def test_a_contact_that_absorbed_another_gets_no_second_lead(
    resolver_of: ResolverOf,
) -> None:
    resolver = resolver_of("first_private_message")
    member = await resolver.resolve(message(20, "7020", GROUP), received_envelope(20, WS))
    buyer = await resolver.resolve(message(21, "7021", private("7021")), received_envelope(21, WS))
    assert len(await leads(resolver, buyer)) == 1
    version = (await resolver.store.load(member)).version
    await resolver.store.append(
        ContactMerged(contact_id=member, merged_contact_id=buyer), member, version,
        workspace_id=WS,
    )  # fmt: skip
    other = resolver_of("first_private_message")
    await other.resolve(message(22, "7020", private("7020")), received_envelope(22, WS))
    assert await leads(other, member) == []  # the buyer's lead is the person's lead


async def test_first_message_from_new_contact_counts_any_chat(resolver_of: ResolverOf) -> None:
    resolver = resolver_of("first_message_from_new_contact")
    member = await resolver.resolve(message(30, "7030", GROUP), received_envelope(30, WS))
    assert len(await leads(resolver, member)) == 1
    none = resolver_of("none")
    quiet = await none.resolve(message(31, "7031", private("7031")), received_envelope(31, WS))
    assert await leads(none, quiet) == []


def test_the_default_rule_counts_one_to_one_chats_only() -> None:
    assert CrmSettings.model_fields["lead_rule"].default == "first_private_message"
