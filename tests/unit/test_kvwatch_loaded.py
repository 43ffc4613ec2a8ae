"""``kvwatch.follow`` says loaded only once the values current at the start are applied.

nats-py's watch sends its end-of-values marker when the consumer's info says nothing is
pending and the client has received nothing yet; the server's answer can overtake the
deliveries it counted, and the marker then comes first. These tests hand ``follow`` exactly
that order (a real server produces it only now and then), and the empty bucket, where the
marker alone is right."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from nats.js.kv import KeyValue

from switchboard.runtime.kvwatch import follow


def _entry(key: str, revision: int, delta: int) -> KeyValue.Entry:
    return KeyValue.Entry(
        bucket="b", key=key, value=b"v", revision=revision, delta=delta, created=None,
        operation=None,
    )  # fmt: skip


@dataclass
class _Watcher:
    """The order nats-py's KeyWatcher hands out, then nothing; its consumer's info."""

    items: list[KeyValue.Entry | None]
    delivered: int
    stopped: bool = False
    _sub: Any = None

    def __post_init__(self) -> None:
        info = SimpleNamespace(
            num_pending=0, delivered=SimpleNamespace(consumer_seq=self.delivered)
        )

        async def consumer_info() -> Any:
            return info

        self._sub = SimpleNamespace(consumer_info=consumer_info)

    async def updates(self, timeout: float) -> KeyValue.Entry | None:
        if self.items:
            return self.items.pop(0)
        await asyncio.sleep(0)
        raise TimeoutError

    async def stop(self) -> None:
        self.stopped = True


@dataclass
class _Bucket:
    watcher: _Watcher
    seen: list[tuple[str, bool]] = field(default_factory=list)

    async def watch(self, keys: str) -> _Watcher:
        return self.watcher


async def _follow(watcher: _Watcher) -> list[tuple[str, bool]]:
    """Follow until loaded (or the watcher ran dry); each applied key with whether loaded
    was already set when it was applied."""
    loaded, stop = asyncio.Event(), asyncio.Event()
    applied: list[tuple[str, bool]] = []

    def apply(entry: KeyValue.Entry) -> None:
        applied.append((entry.key, loaded.is_set()))

    def idle() -> None:
        stop.set()  # nothing more will come

    bucket: Any = _Bucket(watcher)
    task = asyncio.create_task(follow(bucket, apply, loaded, stop, idle=idle))
    await asyncio.wait_for(task, 5)
    applied.append(("loaded", loaded.is_set()))
    return applied


async def test_a_marker_ahead_of_the_values_it_counted_is_not_loaded() -> None:
    watcher = _Watcher([None, _entry("a", 1, 1), _entry("b", 2, 0)], delivered=2)
    assert await _follow(watcher) == [("a", False), ("b", False), ("loaded", True)]
    assert watcher.stopped


async def test_values_then_the_marker() -> None:
    watcher = _Watcher([_entry("a", 1, 1), _entry("b", 2, 0), None], delivered=2)
    assert await _follow(watcher) == [("a", False), ("b", False), ("loaded", True)]


async def test_an_empty_bucket_is_loaded_at_the_marker() -> None:
    assert await _follow(_Watcher([None], delivered=0)) == [("loaded", True)]


async def test_a_later_change_after_an_empty_start() -> None:
    watcher = _Watcher([None, _entry("a", 5, 0)], delivered=0)
    assert await _follow(watcher) == [("a", True), ("loaded", True)]


async def test_values_nats_py_skips_end_the_start_once_nothing_else_comes() -> None:
    """The last values were markers nats-py drops (a reason it does not know): after the
    marker, a second with nothing pending and nothing delivered is loaded, not a hang."""
    assert await _follow(_Watcher([None], delivered=2)) == [("loaded", True)]
