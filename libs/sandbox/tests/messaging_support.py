"""Helpers of the WhatsApp and Viber tests: a raw-body webhook receiver and served fakes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from switchboard.sandbox import ManualClock, RetryPolicy, Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve_provider
from switchboard.sandbox.viber import ViberBot
from switchboard.sandbox.whatsapp import WaNumber

PHONE_ID = "106540352242922"
WA_TOKEN = "EAAJB-test-access-token"
APP_SECRET = "0f5e4d-app-secret"
VERIFY_TOKEN = "verify-me"
GRAPH = "v21.0"
VIBER_TOKEN = "4453b6ac1b35d7a1-e02c5f12174805f9-daec9cbb5448c51c"
FAST_RETRY = RetryPolicy(initial=0.02, factor=2.0, maximum=0.1, timeout=2.0)


@dataclass
class Hit:
    """One POST the receiver accepted: headers, the raw body and its JSON."""

    headers: dict[str, str]
    raw: bytes
    body: Any


@dataclass
class HookReceiver:
    """A webhook endpoint that answers Meta's GET handshake and keeps raw POST bodies.

    `verify_token` is what it expects in `hub.verify_token` (403 otherwise, as Meta's docs
    tell receivers to answer); `echo=False` answers 200 with a wrong challenge.
    """

    verify_token: str = VERIFY_TOKEN
    echo: bool = True
    hits: list[Hit] = field(default_factory=list)
    handshakes: list[dict[str, str]] = field(default_factory=list)
    attempts: int = 0
    failures: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST"])])

    def fail_next(self, count: int, status: int = 503) -> None:
        self.failures.extend([status] * count)

    @property
    def bodies(self) -> list[Any]:
        return [hit.body for hit in self.hits]

    async def handle(self, request: Request) -> Response:
        if request.method == "GET":
            params = dict(request.query_params)
            self.handshakes.append(params)
            if params.get("hub.verify_token") != self.verify_token:
                return Response(status_code=403)
            challenge = params.get("hub.challenge", "")
            return PlainTextResponse(challenge if self.echo else "nope")
        self.attempts += 1
        if self.failures:
            return Response(status_code=self.failures.pop(0))
        raw = await request.body()
        self.hits.append(Hit(dict(request.headers), raw, json.loads(raw)))
        return Response(status_code=200)


def fast_config() -> SandboxConfig:
    config = SandboxConfig()
    config.whatsapp.webhook_retry = FAST_RETRY
    config.viber.webhook_retry = FAST_RETRY
    return config


@dataclass
class WaEnv:
    """A served WhatsApp fake with one business number."""

    sandbox: Sandbox
    url: str
    http: httpx.AsyncClient
    number: WaNumber
    clock: ManualClock | None

    async def post(self, body: dict[str, Any], token: str = WA_TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return await self.http.post(f"/{GRAPH}/{PHONE_ID}/messages", json=body, headers=headers)

    async def send(self, to: str, kind: str = "text", **content: Any) -> httpx.Response:
        """Send a message of `kind`; `content` is its object (defaults for text/template)."""
        if not content:
            content = TEMPLATE if kind == "template" else {"body": "hello"}
        body = {"messaging_product": "whatsapp", "to": to, "type": kind, kind: content}
        return await self.post(body)

    async def user_writes(self, wa_id: str, text: str = "hi") -> dict[str, Any]:
        message = {"type": "text", "text": {"body": text}}
        return await self.sandbox.whatsapp.inject_message(PHONE_ID, wa_id, message, name="Ann")


TEMPLATE = {"name": "order_update", "language": {"code": "en_US"}}


@asynccontextmanager
async def whatsapp_env(*, manual_clock: bool = False) -> AsyncIterator[WaEnv]:
    clock = ManualClock() if manual_clock else None
    box = Sandbox(fast_config(), clock=clock)
    number = box.whatsapp.add_number(
        PHONE_ID,
        WA_TOKEN,
        display_phone_number="+1 555 123 4567",
        waba_id="102290129340398",
        app_secret=APP_SECRET,
        verify_token=VERIFY_TOKEN,
    )
    async with serve_provider(box, "whatsapp") as (url, http):
        yield WaEnv(box, url, http, number, clock)


@dataclass
class ViberEnv:
    """A served Viber fake with one bot."""

    sandbox: Sandbox
    url: str
    http: httpx.AsyncClient
    bot: ViberBot
    clock: ManualClock | None

    async def call(
        self, method: str, body: dict[str, Any] | None = None, token: str = VIBER_TOKEN
    ) -> httpx.Response:
        headers = {"X-Viber-Auth-Token": token}
        return await self.http.post(f"/pa/{method}", json=body or {}, headers=headers)

    async def send_text(self, receiver: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
        body = {"receiver": receiver, "type": "text", "text": text, "sender": {"name": "Shop"}}
        result: dict[str, Any] = (await self.call("send_message", body | extra)).json()
        return result


@asynccontextmanager
async def viber_env(*, manual_clock: bool = False) -> AsyncIterator[ViberEnv]:
    clock = ManualClock() if manual_clock else None
    box = Sandbox(fast_config(), clock=clock)
    bot = box.viber.add_bot(VIBER_TOKEN, "Test Shop", uri="testshop")
    async with serve_provider(box, "viber") as (url, http):
        yield ViberEnv(box, url, http, bot, clock)
