"""The shared file id cache: two Telegram clients (two instances) on one KV bucket of a real
NATS server upload a photo once; the second sends it by the first one's file id. Expiry and
forgetting work as in the in-process cache."""

from __future__ import annotations

import pytest

from switchboard.outbound.providers.files import FileKey, KvFileIdCache
from switchboard.outbound.providers.telegram import TelegramClient
from switchboard.runtime.bus import Bus

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


async def test_entries_expire_and_can_be_forgotten(nats_url: str) -> None:
    now = [1000.0]
    bus = await Bus.connect(nats_url, name="cache")
    try:
        await bus.provision()
        cache = KvFileIdCache(await bus.kv("sends"), clock=lambda: now[0])
        key = FileKey.for_bytes("whatsapp:1", "image", b"bytes")
        forever = FileKey.for_url("telegram:1", "photo", "https://cdn.test/a.jpg")
        assert await cache.get(key) is None
        await cache.put(key, "media-1", ttl=60)
        await cache.put(forever, "file-1")
        assert await cache.get(key) == "media-1"
        now[0] += 61
        assert await cache.get(key) is None
        assert await cache.get(forever) == "file-1"
        await cache.delete(forever)
        await cache.delete(forever)  # forgetting twice is fine
        assert await cache.get(forever) is None
    finally:
        await bus.close()


@pytest.mark.parametrize("owner", ["telegram:1", "telegram:2"])
def test_keys_are_valid_kv_keys_per_owner(owner: str) -> None:
    key = KvFileIdCache.kv_key(FileKey.for_url(owner, "photo", "https://x/ a?b=c"))
    assert key.startswith("file.")
    assert all(c.isalnum() or c == "." for c in key)
