"""The HTTP client of provider calls: the providers' httpx clients on aiohttp's connection
pool, and the moment each send really leaves.

A send has a slot; if its request reaches the wire later (a TCP or TLS handshake for a new
connection, a busy process), it lands at the provider closer to the sends of later slots. The
connector notes the moment it hands the connection over, the last one before the request is
written (``SendWindow.left_at``), so the sender can push the account's later slots by that
lateness; and past the window's deadline, the connection goes back to the pool unused and
``SlotMissedError`` says nothing was sent, so the send takes a new slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from switchboard.outbound.errors import OutboundServiceError


@dataclass
class SendWindow:
    """When a send may leave: its slot, and the deadline after which it must not, on the
    clock the slot was leased on (the server's, in the service)."""

    slot: float
    deadline: float
    left_at: float | None = None
    clock: Callable[[], float] = time.time

    @property
    def lateness(self) -> float:
        return 0.0 if self.left_at is None else max(0.0, self.left_at - self.slot)


SEND_WINDOW: ContextVar[SendWindow | None] = ContextVar("send_window", default=None)


class SlotMissedError(OutboundServiceError):
    """The request would have left after its slot's deadline: it was not sent."""


class DeadlineConnector(aiohttp.TCPConnector):
    """Hands out a connection only inside the current ``SendWindow``, and notes when."""

    async def connect(self, req: Any, traces: Any, timeout: Any) -> aiohttp.connector.Connection:
        conn = await super().connect(req, traces, timeout)
        window = SEND_WINDOW.get()
        if window is not None:
            now = window.clock()
            if now > window.deadline:
                conn.release()
                late = (now - window.slot) * 1000
                raise SlotMissedError(f"{late:.0f} ms after its slot")
            window.left_at = now
        return conn


@contextmanager
def send_window(window: SendWindow) -> Iterator[SendWindow]:
    """Requests made inside leave within ``window`` (and record when they did)."""
    token = SEND_WINDOW.set(window)
    try:
        yield window
    finally:
        SEND_WINDOW.reset(token)


def provider_http(timeout: float, max_connections: int = 512) -> httpx.AsyncClient:
    """One client for every provider call of the service."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=256)

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=DeadlineConnector(limit=max_connections, keepalive_timeout=30.0)
        )

    return httpx.AsyncClient(
        timeout=timeout, limits=limits, transport=AiohttpTransport(limits=limits, client=session)
    )
