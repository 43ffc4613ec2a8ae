"""Ingest freezes its start-up objects out of the garbage collector (issue 22: a full pass
over them stalled the event loop 35-64 ms under webhook load)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from tests.support.stack import service_env

from switchboard.ingest.app import create_app
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import serve_app


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # what the app froze belongs to this test only


async def test_start_up_objects_are_frozen_once_ingest_is_ready(
    nats_url: str, monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    for key, value in service_env(nats_url).items():
        monkeypatch.setenv(key, value)
    app = create_app(load_settings(IngestSettings))
    assert gc.get_freeze_count() == 0
    async with serve_app(app):
        assert gc.get_freeze_count() > 0
