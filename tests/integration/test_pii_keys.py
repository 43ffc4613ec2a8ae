"""Crypto-shredding's key store over real NATS: values sealed per data subject open with the
subject's key, a shredded subject's values decode as erased in every process (its key and
the key's history are gone from the bucket), and other subjects are untouched."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError

from switchboard.events import decode, decode_message
from switchboard.events.catalog.common import Channel, Chat, Sender
from switchboard.events.catalog.conv import MessageReceived, ProviderIds, TextContent
from switchboard.events.catalog.outbound import SendMessage, chat_bucket
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually


def test_sealed_values_open_only_with_their_subject_key() -> None:
    key, other = (1, b"k" * 32), (1, b"o" * 32)
    value = pii.seal(key, "s1", "Zoe Quux, +49 176 1234567")
    assert "Zoe" not in value
    assert "1234567" not in value
    assert pii.subject_of(value) == "s1"
    assert pii.unseal(key, value) == "Zoe Quux, +49 176 1234567"
    with pytest.raises(ValueError, match="does not open"):
        pii.unseal(other, value)
    for moved in (value.replace("pii1:s1:", "pii1:s2:"), value.replace(":1:", ":2:")):
        with pytest.raises(ValueError, match="does not open"):  # both are associated data
            pii.unseal(key if ":1:" in moved else (2, key[1]), moved)
    assert pii.subject_of("plain text") is None


async def test_shredding_a_subject_erases_its_values_everywhere(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="pii-test")
    try:
        await bus.provision()
        kv = await bus.kv(pii.BUCKET)
        producer, consumer = pii.PiiKeys(kv), pii.PiiKeys(kv)
        stop = asyncio.Event()
        follower = asyncio.create_task(consumer.follow(stop))
        zoe = await producer.seal("w", "whatsapp", "4917612345678", "hello from Zoe")
        ada = await producer.seal("w", "telegram", "555", "hello from Ada")
        # a second process (its own cache) opens both; unsealed values pass as they are
        assert await consumer.open(zoe) == "hello from Zoe"
        assert await consumer.open(ada) == "hello from Ada"
        assert await consumer.open("written before sealing") == "written before sealing"
        # the same identity always names the same subject and key
        again = await producer.seal("w", "whatsapp", "4917612345678", "again")
        assert pii.subject_of(again) == pii.subject_of(zoe)

        subject = pii.subject_id("w", "whatsapp", "4917612345678")
        await producer.shred(subject)
        assert await producer.open(zoe) == pii.ERASED

        async def forgotten() -> bool:
            return await consumer.open(zoe) == pii.ERASED

        await eventually(forgotten, message="the purge reached the other process")
        assert await consumer.open(ada) == "hello from Ada"
        assert await pii.PiiKeys(kv).open(again) == pii.ERASED  # a fresh process too
        with pytest.raises(NotFoundError):
            await kv.get(subject)
        history = await kv.history(subject)
        assert all(not e.value for e in history)  # only the purge marker is left

        # data sealed after the erasure gets a new key; the old values stay erased
        later = await producer.seal("w", "whatsapp", "4917612345678", "new message")
        assert await pii.PiiKeys(kv).open(later) == "new message"
        assert await pii.PiiKeys(kv).open(zoe) == pii.ERASED
        stop.set()
        await follower
    finally:
        await bus.close()


async def test_an_event_sealed_for_the_bus_opens_and_decodes_as_erased_after_a_shred(
    nats_url: str,
) -> None:
    """What ``publish_sealed`` stores holds no readable PII (body or headers), decodes to the
    event as published, and after the shred to ``ERASED`` with identities as
    ``erased_identity(<hash>)``, which keys the same rows (``identity_hash``)."""
    phone, text, name = "4917612345678", "my secret order", "Zoe Quux"
    event = MessageReceived(
        channel=Channel.WHATSAPP,
        account="acct",
        chat=Chat(id=phone, title=name),
        sender=Sender(id=phone, display_name=name, phone=phone),
        content=TextContent(text=text),
        provider=ProviderIds(message_id="wamid.1"),
        sent_at=datetime(2026, 1, 1, tzinfo=UTC),
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    bus = await Bus.connect(nats_url, name="pii-events")
    try:
        await bus.provision()
        ack = await pii.publish_sealed(
            bus, event, workspace="w", keys=pii.PiiKeys(await bus.kv(pii.BUCKET))
        )
        stored = await bus.js.get_msg("CONV", ack.seq)
        wire = (stored.data or b"") + repr(stored.headers).encode()
        for needle in (phone, text, name):
            assert needle.encode() not in wire
        assert stored.headers is not None
        assert stored.headers["ce-id"] == pii.event_id("w", event.deterministic_id())

        class Stored:  # what a consumer's message looks like to open_messages
            data = stored.data or b""

        msg, erased = Stored(), Stored()
        async with pii.using(bus) as keys:
            await pii.open_messages([msg])  # type: ignore[list-item]
            assert decode(stored.subject or "", stored.headers, msg.data) == event
            await keys.shred(pii.subject_id("w", "whatsapp", phone))
            await pii.open_messages([erased])  # type: ignore[list-item]
        model = decode(stored.subject or "", stored.headers, erased.data)
        assert isinstance(model, MessageReceived)
        who = pii.identity_hash("w", "whatsapp", phone)
        assert model.sender.id == model.chat.id == pii.erased_identity(who)
        assert pii.identity_hash("w", "whatsapp", model.chat.id) == who
        assert model.content == TextContent(text=pii.ERASED)
        assert (model.sender.display_name, model.sender.phone) == (pii.ERASED, pii.ERASED)
    finally:
        await bus.close()


GOLDEN = Path(__file__).parents[1] / "contract" / "golden"


async def test_every_sealed_event_is_its_model_sealed_on_its_subject(nats_url: str) -> None:
    """``publish_sealed`` writes the sealed JSON as the body and routes by the model as it
    came: for every golden payload, what is stored decodes without opening (consumers that
    need no personal data read it so) to a model whose subject is the one it was stored
    on, and opened it is the event as published."""
    bus = await Bus.connect(nats_url, name="pii-golden")
    try:
        await bus.provision()
        async with pii.using(bus) as keys:
            for n, path in enumerate(sorted(GOLDEN.glob("*/*.json"))):
                name, _, version = path.parent.name.rpartition(".v")
                headers = {"ce-id": "golden-1", "ce-type": f"switchboard.{name}.v{version}",
                           "ce-source": "tests", "ce-specversion": "1.0"}  # fmt: skip
                event = decode_message("x", headers, path.read_bytes()).model
                # a workspace each: payloads with one natural id would be one event
                ack = await pii.publish_sealed(bus, event, workspace=f"w{n}", keys=keys)
                stored = await bus.js.get_msg(ack.stream, ack.seq)
                assert stored.subject == event.subject(), path
                display_name = json.loads(path.read_bytes()).get("display_name")
                if display_name:  # a contact's name travels sealed, whichever event names it
                    assert display_name.encode() not in (stored.data or b""), path
                sealed = decode(stored.subject, stored.headers, stored.data or b"")
                if type(event) is SendMessage:  # not SendBulk: its last token is its campaign
                    # A send's subject ends with its recipient's bucket (outbound's order of
                    # a chat's sends), which a sealed recipient cannot give: it is routed by
                    # the recipient as published, and the lanes read it from the message.
                    assert stored.subject.endswith("." + chat_bucket(event.recipient)), path
                else:
                    assert sealed.subject() == stored.subject, path

                class Stored:  # what a consumer's message looks like to open_messages
                    data = stored.data or b""

                msg = Stored()
                await pii.open_messages([msg])  # type: ignore[list-item]
                assert decode(stored.subject, stored.headers, msg.data) == event, path
    finally:
        await bus.close()


async def test_stores_that_never_met_a_subject_agree_on_its_key(nats_url: str) -> None:
    """A store creates a subject's key before looking it up (a subject it has not seen is
    mostly new): one that lost the creation race, or comes after a shred, or whose cache
    forgot the key, still ends with the one key the bucket holds."""
    bus = await Bus.connect(nats_url, name="pii-race")
    try:
        await bus.provision()
        kv = await bus.kv(pii.BUCKET)
        first, second = pii.PiiKeys(kv), pii.PiiKeys(kv)
        a = await first.seal("w", "telegram", "race-1", "from the first")
        b = await second.seal("w", "telegram", "race-1", "from the second")
        assert pii.parse(a) == pii.parse(b)  # one subject, one generation: one key
        assert await first.open(b) == "from the second"
        assert await second.open(a) == "from the first"
        together = await asyncio.gather(
            *(pii.PiiKeys(kv).seal("w", "telegram", "race-2", str(i)) for i in range(8))
        )
        assert len({pii.parse(v) for v in together}) == 1

        await first.shred(pii.subject_id("w", "telegram", "race-1"))
        later = await pii.PiiKeys(kv).seal("w", "telegram", "race-1", "after the erasure")
        reader = pii.PiiKeys(kv)
        assert pii.parse(later) != pii.parse(a)
        assert await reader.open(later) == "after the erasure"
        assert await reader.open(a) == pii.ERASED

        # a body naming subjects a store never met opens after one prefetch
        body = json.dumps({"x": together[0], "y": b, "z": later}).encode()
        assert json.loads(reader.open_body(body, await reader.prefetch([body]))) == {
            "x": "0", "y": pii.ERASED, "z": "after the erasure",
        }  # fmt: skip
    finally:
        await bus.close()


async def test_a_store_keeps_a_bounded_cache_and_still_opens_and_forgets_everything(
    nats_url: str,
) -> None:
    """A process starts without loading the bucket (every key ever made, in every service:
    ~500 bytes and ~20 us of start-up a key before), keeps at most its capacity, opens a
    batch naming more subjects than that, and hears of keys made and shredded elsewhere."""
    bus = await Bus.connect(nats_url, name="pii-bounded")
    stop = asyncio.Event()
    following: asyncio.Task[None] | None = None
    try:
        await bus.provision()
        kv = await bus.kv(pii.BUCKET)
        producer = pii.PiiKeys(kv)
        sealed = [await producer.seal("wb", "telegram", f"p{i}", f"text {i}") for i in range(30)]
        reader = pii.PiiKeys(kv, capacity=10)
        following = asyncio.create_task(reader.follow(stop))
        await reader.loaded.wait()
        assert len(reader._keys) == 0  # nothing loaded at the start
        body = json.dumps(sealed).encode()
        assert json.loads(reader.open_body(body, await reader.prefetch([body]))) == [
            f"text {i}" for i in range(30)
        ]
        assert len(reader._keys) == 10  # the batch opened whole; the cache kept its bound
        # a key made elsewhere now reaches the reader without a fetch
        new = await producer.seal("wb", "telegram", "late", "late text")
        late = pii.subject_id("wb", "telegram", "late")

        async def learned() -> bool:
            return reader._keys.get(late) is not None

        await eventually(learned, message="the new key reached the reader")
        # shredded elsewhere: a key the reader holds is dropped by the watch, one it forgot
        # is found gone when fetched
        await producer.shred(late)
        await producer.shred(pii.subject_id("wb", "telegram", "p0"))

        async def dropped() -> bool:
            return late in reader._keys and reader._keys[late] is None

        await eventually(dropped, message="the shred reached the reader")
        # forgotten long ago: its key is not held (its shred, published after the one waited
        # for, may or may not have been noted as gone by now)
        assert reader._keys.get(pii.subject_of(sealed[0])) is None
        assert await reader.open(new) == pii.ERASED
        assert await reader.open(sealed[0]) == pii.ERASED
        assert await reader.open(sealed[29]) == "text 29"
    finally:
        stop.set()
        if following is not None:
            await following
        await bus.close()
