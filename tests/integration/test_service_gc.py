"""Every service freezes what its start-up built, so the collector's full passes do not
stall its event loop rescanning it (the CRM paused 76 ms in its first busy second)."""

from __future__ import annotations

import gc

from switchboard.runtime.service import Runtime, service_lifespan
from switchboard.runtime.settings import ServiceSettings


async def test_start_up_is_frozen_before_the_service_serves(nats_url: str) -> None:
    built: list[object] = []

    async def start(_: Runtime) -> None:
        built.append({"a cache": [object() for _ in range(1000)]})

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        async with service_lifespan(ServiceSettings(nats_url=nats_url), "probe", start):
            assert gc.get_freeze_count() > 1000  # the start's thousand objects among them
    finally:
        gc.unfreeze()
