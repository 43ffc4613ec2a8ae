"""Fixtures of the provider tests: a served sandbox with a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .support import Env, sandbox_env


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with sandbox_env() as served:
        yield served
