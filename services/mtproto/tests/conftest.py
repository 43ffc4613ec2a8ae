"""Fixtures of the gateway's tests that several files use."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .mtproto_support import Wire, on_the_wire


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    """The Telethon adapter against the wire-level fake (see :func:`on_the_wire`)."""
    async with on_the_wire() as env:
        yield env
