"""Listing a KV bucket's current values (``runtime.kv.entries``) on a real JetStream: the
latest value of each key under the filter, with its revision; deleted and purged keys and
keys outside the filter left out; more keys than one fetch holds; an empty listing. The
calendar's overlap check and the outbound erasure read through it, not through nats-py's
watch, whose end-of-values marker could come before the values (docstring of ``entries``)."""

from __future__ import annotations

from switchboard.runtime.bus import Bus
from switchboard.runtime.kv import entries


async def test_the_current_value_of_each_key_under_the_filter(bus: Bus) -> None:
    kv = await bus.kv("calendar")
    assert await entries(bus, "calendar", "listing.*") == []
    await kv.put("listing.a", b"1")
    revision = await kv.put("listing.a", b"2")
    kept = await kv.put("listing.b", b"3")
    await kv.put("listing.c", b"4")
    await kv.delete("listing.c")
    await kv.put("listing.d", b"5")
    await kv.purge("listing.d")
    await kv.put("other.a", b"6")
    found = await entries(bus, "calendar", "listing.*")
    assert sorted(found) == [("listing.a", b"2", revision), ("listing.b", b"3", kept)]


async def test_more_keys_than_one_fetch(bus: Bus) -> None:
    kv = await bus.kv("calendar")
    for i in range(700):
        await kv.put(f"many.k{i}", str(i).encode())
    found = await entries(bus, "calendar", "many.*")
    assert sorted(int(e.value) for e in found) == list(range(700))


async def test_a_listing_leaves_no_consumer_behind(bus: Bus) -> None:
    kv = await bus.kv("calendar")
    await kv.put("left.a", b"1")
    before = {c.name for c in await bus.js.consumers_info("KV_calendar")}
    assert [e.key for e in await entries(bus, "calendar", "left.*")] == ["left.a"]
    assert {c.name for c in await bus.js.consumers_info("KV_calendar")} <= before
