"""The shared file id cache: two Telegram clients (two instances) on one KV bucket of a real
NATS server upload a photo once; the second sends it by the first one's file id. Entries
expire by the bucket's TTL and can be forgotten."""

from __future__ import annotations

import pytest
from nats.js.api import KeyValueConfig

from switchboard.outbound.providers.files import FileKey, KvFileIdCache
from switchboard.outbound.providers.telegram import TelegramClient
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually

from .support import PNG, TG_TOKEN, Env, account, command, media


async def bucket(nats_url: str, name: str) -> tuple[Bus, KvFileIdCache]:
    bus = await Bus.connect(nats_url, name=name)
    await bus.provision()
    return bus, KvFileIdCache(await bus.kv("sends"))


async def test_a_file_uploaded_by_one_instance_is_sent_by_id_by_another(
    env: Env, nats_url: str
) -> None:
    env.box.telegram.add_bot(TG_TOKEN, "shop_bot")
    env.box.config.telegram.limits.enabled = False
    bus_a, cache_a = await bucket(nats_url, "instance-a")
    bus_b, cache_b = await bucket(nats_url, "instance-b")
    try:
        first = TelegramClient(env.http, base_url=f"{env.url}/telegram", file_ids=cache_a)
        second = TelegramClient(env.http, base_url=f"{env.url}/telegram", file_ids=cache_b)
        await first.send(account(), command(media("photo", data=PNG, caption="one")))
        await second.send(account(), command(media("photo", data=PNG, caption="two")))
    finally:
        await bus_a.close()
        await bus_b.close()
    photos = env.box.recorder.requests(provider="telegram", method="sendPhoto", ok=True)
    assert len(photos) == 2
    # the second went by the file id the first upload got
    assert [str(r.params["photo"]).startswith("<upload") for r in photos] == [True, False]


async def test_entries_expire_by_the_buckets_ttl_and_can_be_forgotten(nats_url: str) -> None:
    """Expiry is the server's (the bucket's TTL): no instance compares a time another one
    wrote with its own clock. An id that lives shorter than the bucket keeps entries is not
    cached at all (sending an expired id would fail the send; uploading again never does)."""
    bus = await Bus.connect(nats_url, name="cache")
    try:
        short = await bus.js.create_key_value(KeyValueConfig(bucket="file_ids_short", ttl=1.0))
        cache = KvFileIdCache(short, lifetime_s=1.0)
        key = FileKey.for_bytes("whatsapp:1", "image", b"bytes")
        forever = FileKey.for_url("telegram:1", "photo", "https://cdn.test/a.jpg")
        assert await cache.get(key) is None
        await cache.put(key, "media-1", ttl=0.5)  # expires before the bucket forgets it
        assert await cache.get(key) is None
        await cache.put(key, "media-1", ttl=60)
        assert await cache.get(key) == "media-1"
        await eventually(lambda: _missing(cache, key), timeout=30, message="bucket TTL")

        await bus.provision()
        sends = KvFileIdCache(await bus.kv("sends"))
        await sends.put(forever, "file-1")
        assert await sends.get(forever) == "file-1"
        await sends.delete(forever)
        await sends.delete(forever)  # forgetting twice is fine
        assert await sends.get(forever) is None
    finally:
        await bus.close()


async def _missing(cache: KvFileIdCache, key: FileKey) -> bool:
    return await cache.get(key) is None


@pytest.mark.parametrize("owner", ["telegram:1", "telegram:2"])
def test_keys_are_valid_kv_keys_per_owner(owner: str) -> None:
    key = KvFileIdCache.kv_key(FileKey.for_url(owner, "photo", "https://x/ a?b=c"))
    assert key.startswith("file.")
    assert all(c.isalnum() or c == "." for c in key)
