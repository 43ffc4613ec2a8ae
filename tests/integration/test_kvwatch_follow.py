"""``kvwatch.follow`` on a real JetStream: ``loaded`` comes once every value current at the
start was applied (many keys, an empty filter), and later changes keep coming. The order
in which nats-py's end marker can overtake the values is forced in
``tests/unit/test_kvwatch_loaded.py``; this checks what the fake cannot: the deliveries'
counts and the consumer's info as a real server gives them."""

from __future__ import annotations

import asyncio

from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from switchboard.runtime.bus import Bus
from switchboard.runtime.kvwatch import follow
from switchboard.runtime.testing import eventually


async def test_loaded_after_every_value_and_changes_after_it(bus: Bus) -> None:
    kv = await bus.js.create_key_value(KeyValueConfig(bucket="follow_many", history=1))
    for i in range(1500):
        await kv.put(f"k.{i}", str(i).encode())
    await kv.delete("k.7")
    applied: dict[str, bytes] = {}
    at_load: list[int] = []
    loaded, stop = asyncio.Event(), asyncio.Event()

    def apply(entry: KeyValue.Entry) -> None:
        if entry.operation in ("DEL", "PURGE"):
            applied.pop(entry.key, None)
        else:
            applied[entry.key] = entry.value or b""

    task = asyncio.create_task(follow(kv, apply, loaded, stop, keys="k.>"))
    try:
        await asyncio.wait_for(loaded.wait(), 20)
        at_load.append(len(applied))
        assert at_load == [1499]  # every value, the deleted one gone
        await kv.put("k.new", b"later")

        async def changed() -> bool:
            return applied.get("k.new") == b"later"

        await eventually(changed, message="a change after loading")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_an_empty_filter_is_loaded(bus: Bus) -> None:
    kv = await bus.js.create_key_value(KeyValueConfig(bucket="follow_none", history=1))
    await kv.put("other.x", b"1")
    loaded, stop = asyncio.Event(), asyncio.Event()
    seen: list[str] = []
    task = asyncio.create_task(follow(kv, lambda e: seen.append(e.key), loaded, stop, keys="k.>"))
    try:
        await asyncio.wait_for(loaded.wait(), 20)
        assert seen == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
