"""Crypto-shredding's key store over real NATS: values sealed per data subject open with the
subject's key, a shredded subject's values decode as erased in every process (its key and
the key's history are gone from the bucket), and other subjects are untouched."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.errors import NotFoundError

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
