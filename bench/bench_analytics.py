"""`just bench analytics`: how fast the analytics rollups replay, against plain nats-py.

Loads realistic traffic into CONV, DELIVERY and CRM (people writing on three channels,
replies, each reply's queued / sent / receipt events, contacts and leads moving through
the funnel), then measures how fast plain nats-py pulls and acks every one of those events
(the baseline), and how fast ``switchboard analytics rebuild`` replays them into fresh
rollups and swaps those in, end to end. Both run in this process, one after the other.
Prints, last: `analytics_replay_ratio=<x> events_per_s=<y>`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.analytics.rebuild import rebuild
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.events import Message, encode
from switchboard.events.catalog.common import Channel, Chat, Sender
from switchboard.events.catalog.conv import MessageReceived, MessageSent, ProviderIds, TextContent
from switchboard.events.catalog.crm import ContactCreated, Identity, LeadCreated, LeadStageChanged
from switchboard.events.catalog.delivery import DeliveryQueued, DeliveryReceipt, DeliverySent
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats, EmbeddedPostgres

EVENTS = int(os.environ.get("BENCH_EVENTS", "60000"))
STREAMS = {"CONV": "conv.>", "DELIVERY": "delivery.>", "CRM": "crm.>"}
STAGES = ("contacted", "qualified", "won")


def realistic(n: int, rng: random.Random) -> list[tuple[Message, datetime]]:
    """About ``n`` events; each with the time its envelope says."""
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    out: list[tuple[Message, datetime]] = []
    channels = (Channel.TELEGRAM, Channel.WHATSAPP, Channel.VIBER)
    known: set[int] = set()
    i = 0
    while len(out) < n:
        i += 1
        at = t0 + timedelta(seconds=i * 7)
        person = rng.randrange(4000)
        channel = channels[person % 3]
        chat = f"{channel.value[:2]}{person}"
        out.append(
            (
                MessageReceived(
                    channel=channel,
                    account="acct",
                    chat=Chat(id=chat),
                    sender=Sender(id=chat, display_name=f"Person {person}"),
                    content=TextContent(text="how much is the blue bike?"),
                    provider=ProviderIds(message_id=str(i)),
                    sent_at=at,
                    received_at=at,
                ),
                at,
            )
        )
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


async def load(bus: Bus, events: list[tuple[Message, datetime]]) -> None:
    pending = []
    for ev, at in events:
        enc = encode(ev, source="bench", workspace_id="bench", time=at)
        pending.append(bus.js.publish(enc.subject, enc.body, headers=enc.headers))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)


async def baseline(bus: Bus) -> float:
    """Plain nats-py: pull and ack every event of the three streams."""
    got, start = 0, time.perf_counter()
    for stream, subject in STREAMS.items():
        total = (await bus.js.stream_info(stream)).state.messages
        sub = await bus.js.pull_subscribe(
            subject,
            durable=None,
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL),
        )
        seen = 0
        while seen < total:
            try:
                msgs = await sub.fetch(1000, timeout=2)
            except NatsTimeout:
                break
            for m in msgs:
                await m.ack()
            seen += len(msgs)
        await sub.unsubscribe()
        got += seen
    return got / (time.perf_counter() - start)


async def replay(nats_url: str, pg_url: str, total: int) -> float:
    settings = AnalyticsSettings(
        nats_url=nats_url,
        database_url=pg_url,
        api_keys={"bench-key-1": "bench"},
        conversion_pixel="1234567890",
    )
    gc.collect()
    gc.freeze()  # as a CLI process would start: nothing but the imports
    start = time.perf_counter()
    await rebuild(settings, log=lambda line: print(f"  rebuild: {line}"))
    return total / (time.perf_counter() - start)


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    nats = EmbeddedNats(tmp / "nats").start()
    pg = EmbeddedPostgres(tmp / "pg").start()
    try:
        bus = await Bus.connect(nats.url, name="bench")
        await bus.provision()
        events = realistic(EVENTS, random.Random(42))
        t = time.perf_counter()
        await load(bus, events)
        total = len(events)
        print(f"loaded {total:,} events (CONV, DELIVERY, CRM) in {time.perf_counter() - t:.1f} s")
        del events
        base = await baseline(bus)
        print(f"baseline: plain nats-py pull + ack: {base:,.0f} events/s")
        await bus.close()
        rate = await replay(nats.url, pg.url, total)
        print(f"replay: analytics rebuild from empty: {rate:,.0f} events/s")
        print(f"analytics_replay_ratio={rate / base:.2f} events_per_s={rate:.0f}")
    finally:
        pg.stop()
        nats.stop()


if __name__ == "__main__":
    asyncio.run(main())
