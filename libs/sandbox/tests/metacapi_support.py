"""Helpers of the Meta CAPI tests: a served fake on a manual clock and valid events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from switchboard.sandbox import ManualClock, Sandbox, SandboxConfig
from switchboard.sandbox.metacapi import hash_field
from switchboard.sandbox.testing import serve_provider

PIXEL = "1234567890123"
TOKEN = "EAAGtestToken123"
VERSION = "v25.0"
EMAIL_HASH = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
PHONE_HASH = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"


@dataclass
class CapiEnv:
    """A served CAPI fake (alone, at root) whose clock only moves when told."""

    sandbox: Sandbox
    http: httpx.AsyncClient
    clock: ManualClock

    def now(self) -> int:
        return int(self.clock.time())

    def event(self, **overrides: Any) -> dict[str, Any]:
        """A valid website Purchase at the current sandbox time (overrides replace keys)."""
        event: dict[str, Any] = {
            "event_name": "Purchase",
            "event_time": self.now() - 30,
            "event_id": "order-1",
            "action_source": "website",
            "event_source_url": "https://shop.example.com/checkout",
            "user_data": {
                "em": [hash_field("em", "john_smith@gmail.com")],
                "ph": [hash_field("ph", "16505551212")],
                "client_ip_address": "203.0.113.7",
                "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                "fbp": "fb.1.1700000000000.1234567890",
            },
            "custom_data": {"currency": "USD", "value": 12.5},
        }
        event.update(overrides)
        return event

    def with_user_data(self, **fields: Any) -> dict[str, Any]:
        """A valid event whose user_data has `fields` set (None removes a field)."""
        event = self.event()
        for name, value in fields.items():
            if value is None:
                event["user_data"].pop(name, None)
            else:
                event["user_data"][name] = value
        return event

    async def post(
        self,
        events: list[dict[str, Any]],
        *,
        token: str | None = TOKEN,
        pixel: str = PIXEL,
        version: str = VERSION,
        **body: Any,
    ) -> httpx.Response:
        params = {"access_token": token} if token else {}
        return await self.http.post(
            f"/{version}/{pixel}/events", params=params, json={"data": events, **body}
        )


@asynccontextmanager
async def capi_env(config: SandboxConfig | None = None) -> AsyncIterator[CapiEnv]:
    clock = ManualClock()
    box = Sandbox(config or SandboxConfig(), clock=clock)
    box.metacapi.add_pixel(PIXEL, TOKEN)
    async with serve_provider(box, "metacapi") as (_url, http):
        yield CapiEnv(box, http, clock)


def graph_error(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of a Graph error answer (asserting the envelope)."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["fbtrace_id"]
    return error
