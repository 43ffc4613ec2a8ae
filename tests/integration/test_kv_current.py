"""``runtime.kv.current`` on a real JetStream bucket: a key never written, deleted, purged
or holding nothing reads as absent; a written one with its value and revision."""

from __future__ import annotations

from switchboard.runtime.bus import Bus
from switchboard.runtime.kv import Current, current


async def test_only_a_key_holding_a_value_is_current(bus: Bus) -> None:
    kv = await bus.kv("accounts")
    assert await current(kv, "kvtest.never") is None
    revision = await kv.put("kvtest.live", b"v1")
    assert await current(kv, "kvtest.live") == Current(b"v1", revision)
    await kv.put("kvtest.empty", b"")
    assert await current(kv, "kvtest.empty") is None
    await kv.put("kvtest.deleted", b"v")
    await kv.delete("kvtest.deleted")
    assert await current(kv, "kvtest.deleted") is None
    await kv.put("kvtest.purged", b"v")
    await kv.purge("kvtest.purged")
    assert await current(kv, "kvtest.purged") is None
