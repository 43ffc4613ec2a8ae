"""runtime.kv.KvModels on a real KV bucket: a record reads back with its revision, a write at
a stale revision loses, and create refuses a key that holds a record but not one that was
deleted."""

from __future__ import annotations

from pydantic import BaseModel

from switchboard.runtime.bus import Bus
from switchboard.runtime.kv import KvModels


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
