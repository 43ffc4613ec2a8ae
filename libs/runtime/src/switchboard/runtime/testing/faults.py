"""Failures of our own infrastructure, injected where a test needs one."""

from __future__ import annotations

from typing import Any

import nats.errors
import pytest

from switchboard.runtime import pii


def sealed_publish_times_out_once(monkeypatch: pytest.MonkeyPatch, event: str) -> list[str]:
    """The bus times out on the first sealed publish of ``event`` (a loaded NATS, as in a
    full run); returns the message ids it failed, to check that it did."""
    real = pii.publish_sealed
    failed: list[str] = []

    async def flaky(bus: Any, model: Any, **kwargs: Any) -> Any:
        if model.name == event and not failed:
            failed.append(model.message_id)
            raise nats.errors.TimeoutError
        return await real(bus, model, **kwargs)

    monkeypatch.setattr(pii, "publish_sealed", flaky)
    return failed
