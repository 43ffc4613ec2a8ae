"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from switchboard.runtime.bus import Bus


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    """A connection to this test's JetStream, with the catalog's streams and buckets."""
    bus = await Bus.connect(nats_url, name="test")
    await bus.provision()
    yield bus
    await bus.close()
