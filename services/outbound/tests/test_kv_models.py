"""KvModels on a real KV bucket: a record reads back with its revision, a write at a stale
revision loses, and create refuses a key that holds a record but not one that was deleted;
live_entry, which KvModels and the other KV reads go through, sees no record in a key
never written, deleted, purged or written empty."""

from __future__ import annotations

from pydantic import BaseModel

from switchboard.outbound.kvmodels import KvModels
from switchboard.runtime.bus import Bus
from switchboard.runtime.kvread import LiveEntry, live_entry


class Note(BaseModel):
    text: str
    tag: str | None = None


async def test_read_replace_and_create_follow_the_revision(bus: Bus) -> None:
    notes = KvModels(await bus.kv("sends"), Note, exclude_none=True)
    assert await notes.read("n.1") is None
    assert await notes.create("n.1", Note(text="first"))
    assert not await notes.create("n.1", Note(text="again"))
    found = await notes.read("n.1")
    assert found is not None
    first, revision = found
    assert first == Note(text="first")
    assert await notes.replace("n.1", Note(text="second"), revision)
    assert not await notes.replace("n.1", Note(text="stale"), revision)
    assert await notes.get("n.1") == Note(text="second")
    await notes.kv.delete("n.1")
    assert await notes.get("n.1") is None
    assert await notes.create("n.1", Note(text="after the delete"))


async def test_replace_at_zero_writes_only_a_new_key(bus: Bus) -> None:
    notes = KvModels(await bus.kv("sends"), Note)
    assert await notes.replace("n.2", Note(text="new"), 0)
    assert not await notes.replace("n.2", Note(text="again"), 0)


async def test_none_fields_are_left_out_when_asked(bus: Bus) -> None:
    kv = await bus.kv("sends")
    await KvModels(kv, Note, exclude_none=True).put("n.3", Note(text="a"))
    await KvModels(kv, Note).put("n.4", Note(text="a"))
    assert (await kv.get("n.3")).value == b'{"text":"a"}'
    assert (await kv.get("n.4")).value == b'{"text":"a","tag":null}'


async def test_live_entry_is_none_for_every_way_a_key_holds_no_record(bus: Bus) -> None:
    kv = await bus.kv("sends")
    assert await live_entry(kv, "e.never") is None
    revision = await kv.put("e.1", b"x")
    assert await live_entry(kv, "e.1") == LiveEntry(b"x", revision)
    await kv.put("e.empty", b"")
    assert await live_entry(kv, "e.empty") is None
    await kv.delete("e.1")
    assert await live_entry(kv, "e.1") is None
    await kv.put("e.2", b"y")
    await kv.purge("e.2")
    assert await live_entry(kv, "e.2") is None
