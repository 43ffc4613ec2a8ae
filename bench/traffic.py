"""Realistic traffic for the replay benchmarks, over CONV, DELIVERY and CRM.

People write on three channels; about 60 % get a reply with its queued / sent / receipt
events; 5 % of messages are edited; every new person becomes a contact and a lead that
moves through the funnel. The CRM and analytics benchmarks replay the same mix, loaded
into the streams by ``load``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from switchboard.events import Encoded, Message, encode
from switchboard.events.catalog.common import Channel, Chat, Sender
from switchboard.events.catalog.conv import (
    MessageEdited,
    MessageReceived,
    MessageSent,
    ProviderIds,
    TextContent,
)
from switchboard.events.catalog.crm import ContactCreated, Identity, LeadCreated, LeadStageChanged
from switchboard.events.catalog.delivery import DeliveryQueued, DeliveryReceipt, DeliverySent
from switchboard.runtime.bus import Bus

STAGES = ("contacted", "qualified", "won")
TEXTS = (
    "how much is the blue bike?",
    "hello, where is my order",
    "thanks!",
    "can I get a refund for invoice 1234",
    "when does the delivery come",
)


def realistic(n: int, rng: random.Random, people: int = 4000) -> list[tuple[Message, datetime]]:
    """About ``n`` events; each with the time its envelope says."""
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    out: list[tuple[Message, datetime]] = []
    channels = (Channel.TELEGRAM, Channel.WHATSAPP, Channel.VIBER)
    known: set[int] = set()
    i = 0
    while len(out) < n:
        i += 1
        at = t0 + timedelta(seconds=i * 7)
        person = rng.randrange(people)
        channel = channels[person % 3]
        chat = f"{channel.value[:2]}{person}"
        phone = str(4917600000000 + person) if channel is Channel.WHATSAPP else None
        received = MessageReceived(
            channel=channel,
            account="acct",
            chat=Chat(id=chat),
            sender=Sender(id=chat, display_name=f"Person {person}", phone=phone),
            content=TextContent(text=rng.choice(TEXTS)),
            provider=ProviderIds(message_id=str(i)),
            sent_at=at,
            received_at=at,
        )
        out.append((received, at))
        if rng.random() < 0.05:
            edit_at = at + timedelta(seconds=30)
            edited = MessageEdited(
                channel=channel,
                account="acct",
                chat=received.chat,
                provider=received.provider,
                received_at=edit_at,
                sender=received.sender,
                content=TextContent(text="edited: " + received.content.text),  # type: ignore[union-attr]
                edited_at=edit_at,
            )
            out.append((edited, edit_at))
        if person not in known:
            known.add(person)
            contact, lead = f"ct_{person}", f"ld_{person}"
            identity = Identity(channel=channel, external_id=chat)
            out.append(
                (
                    ContactCreated(
                        contact_id=contact,
                        display_name=f"Person {person}",
                        identities=(identity,),
                        source_channel=channel,
                    ),
                    at,
                )
            )
            out.append(
                (
                    LeadCreated(
                        lead_id=lead, contact_id=contact, stage="new", source_channel=channel
                    ),
                    at,
                )
            )
            previous = "new"
            for stage in STAGES[: rng.randrange(len(STAGES) + 1)]:
                out.append(
                    (
                        LeadStageChanged(
                            lead_id=lead, contact_id=contact, from_stage=previous, to_stage=stage
                        ),
                        at + timedelta(minutes=5),
                    )
                )
                previous = stage
        if rng.random() < 0.6:
            reply_at = at + timedelta(seconds=rng.randint(5, 600))
            mid, pid = f"m{i}", f"p{i}"
            base = {"message_id": mid, "channel": channel, "account": "acct", "recipient": chat}
            out += [
                (
                    DeliveryQueued(
                        **base, at=reply_at, campaign_id="promo" if i % 4 == 0 else None
                    ),
                    reply_at,
                ),  # type: ignore[arg-type]
                (
                    DeliverySent(
                        **base, at=reply_at + timedelta(milliseconds=180), provider_message_id=pid
                    ),
                    reply_at,
                ),  # type: ignore[arg-type]
                (
                    MessageSent(
                        channel=channel,
                        account="acct",
                        chat=Chat(id=chat),
                        message_id=mid,
                        provider_message_id=pid,
                        text="It is 499 EUR",
                        content_kind="text",
                        sent_at=reply_at,
                    ),
                    reply_at,
                ),
                (
                    DeliveryReceipt(
                        channel=channel,
                        account="acct",
                        recipient=chat,
                        status="delivered",
                        provider_message_id=pid,
                        at=reply_at + timedelta(seconds=2),
                    ),
                    reply_at,
                ),
            ]
    return out[:n]


Encoder = Callable[[Message, datetime], Awaitable[Encoded]]


async def plain(ev: Message, at: datetime) -> Encoded:
    """``ev`` as it is published at ``at`` by source and workspace ``bench``."""
    return encode(ev, source="bench", workspace_id="bench", time=at)


async def load(bus: Bus, events: list[tuple[Message, datetime]], encoded: Encoder = plain) -> None:
    """Publish ``events`` (each as ``encoded`` gives it) into their streams, a thousand in
    flight at a time."""
    pending = []
    for ev, at in events:
        enc = await encoded(ev, at)
        pending.append(bus.js.publish(enc.subject, enc.body, headers=enc.headers))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
