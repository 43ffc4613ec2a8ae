"""Fixtures the e2e tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.support.crm import Crm, running_crm


@pytest.fixture
async def crm(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Crm]:
    """The CRM served in-process on this test's bus and database."""
    async with running_crm(nats_url, postgres_url, monkeypatch) as crm:
        yield crm
