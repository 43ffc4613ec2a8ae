"""The flow library's catch-up reads: concurrent askers share one read."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from nats.js.errors import NotFoundError

from switchboard.flows.library import FlowLibrary


async def test_concurrent_syncs_share_one_read() -> None:
    calls = 0

    async def get_msg(*_: Any, **__: Any) -> Any:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)  # a round trip
        raise NotFoundError

    bus = SimpleNamespace(js=SimpleNamespace(get_msg=get_msg))
    library = FlowLibrary(bus)  # type: ignore[arg-type]
    await asyncio.gather(*(library.sync() for _ in range(20)))
    assert calls <= 2  # the first read, and one begun after everyone else asked
    before = calls
    await library.sync()
    assert calls == before + 1  # a later ask reads again
