"""A real local HTTP receiver of Standard Webhooks: it verifies each call's signature with
the ``standardwebhooks`` library (401 when it does not verify) and answers a fixed JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from standardwebhooks import Webhook

from switchboard.runtime.testing.receivers import webhook_receiver


@asynccontextmanager
async def receiver(
    secret: str, answer: dict[str, Any]
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """``(base url, calls seen)``: each verified call's headers and payload, in order."""

    async def fixed(_path: str, _payload: Any) -> tuple[int, dict[str, Any]]:
        return 200, answer

    async with webhook_receiver(Webhook(secret).verify, fixed) as served:
        yield served
