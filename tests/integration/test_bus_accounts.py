"""The runtime on a real JetStream: provisioning, and the encrypted accounts registry with
its live cache (the consumers' contract is tests/integration/test_consumers.py)."""

from __future__ import annotations

import asyncio

from tests.support.stack import keyring

from switchboard.events.catalog.common import Channel
from switchboard.events.streams import BUCKETS, STREAMS
from switchboard.runtime.accounts import Account, AccountCache, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.testing import eventually


async def test_provisioning_is_idempotent(bus: Bus) -> None:
    await bus.provision()
    await asyncio.gather(bus.provision(), bus.provision())
    names = {s.config.name for s in await bus.js.streams_info()}
    assert {s.name for s in STREAMS} | {f"KV_{b.name}" for b in BUCKETS} <= names


async def test_accounts_are_encrypted_at_rest_and_cached_live(bus: Bus) -> None:
    kv = await bus.kv("accounts")
    store = AccountStore(kv, keyring())
    cache = AccountCache(store)
    stop = asyncio.Event()
    task = asyncio.create_task(cache.run(stop))
    await asyncio.wait_for(cache.loaded.wait(), 5)
    await store.put(
        Account(
            channel=Channel.TELEGRAM,
            id="bot1",
            workspace_id="w",
            secrets={"token": "123:PLAINTEXT-TOKEN", "webhook_secret": "whs-1"},
        )
    )
    entry = await kv.get("telegram.bot1")
    assert entry.value is not None
    assert b"PLAINTEXT-TOKEN" not in entry.value
    assert b"whs-1" not in entry.value
    found = await eventually(lambda: _get(cache, "bot1"), message="cache sees the account")
    assert found.secrets["token"] == "123:PLAINTEXT-TOKEN"
    assert "PLAINTEXT" not in repr(found)
    assert found.public()["secrets"] == ["token", "webhook_secret"]

    # rotation: a new active key, old records still readable, re-encryption moves them
    new = Keyring({"k9": b"\x01" * 32, **store.keyring.keys}, "k9")
    rotated = AccountStore(kv, new)
    assert (await rotated.get(Channel.TELEGRAM, "bot1")) is not None
    assert await rotated.reencrypt_all() == 1
    raw = (await kv.get("telegram.bot1")).value or b""
    assert b'"k9:' in raw

    # the old instance lacks k9 but can still delete the account
    assert await store.delete(Channel.TELEGRAM, "bot1") is True
    assert await store.delete(Channel.TELEGRAM, "bot1") is False
    await eventually(lambda: _gone(cache, "bot1"), message="cache drops the account")
    stop.set()
    await task


async def test_records_no_configured_key_opens_are_reported_not_fatal(bus: Bus) -> None:
    # Found by schemathesis: after a key was retired too early, listing and re-encrypting
    # accounts answered 500. They now list what they can and name what they cannot.
    kv = await bus.kv("accounts")
    old = AccountStore(kv, Keyring({"k0": b"\x02" * 32}, "k0"))
    await old.put(Account(channel=Channel.VIBER, id="legacy", secrets={"token": "viber-legacy-1"}))
    store = AccountStore(kv, keyring())
    await store.put(Account(channel=Channel.VIBER, id="fresh", secrets={"token": "viber-fresh-1"}))
    readable, unreadable = await store.scan()
    assert [a.id for a in readable] == ["fresh"]
    assert unreadable == [
        ("viber.legacy", "secret was encrypted with key 'k0', which is not configured")
    ]
    assert [a.id for a in await store.list()] == ["fresh"]
    assert await store.reencrypt_all() == 1
    assert b'"k0:' in ((await kv.get("viber.legacy")).value or b""), "left as it was"
    # Ids no account can have are simply absent (they are not valid KV keys either).
    assert await store.get(Channel.VIBER, "ünïcode;") is None
    assert await store.delete(Channel.VIBER, "a/b") is False


async def _get(cache: AccountCache, name: str) -> Account | None:
    return cache.get(Channel.TELEGRAM, name)


async def _gone(cache: AccountCache, name: str) -> bool:
    return cache.get(Channel.TELEGRAM, name) is None
