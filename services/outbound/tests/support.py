"""Builders shared by the provider tests: accounts, commands, a recording MockTransport,
multipart parsing, and a served sandbox with a manual clock."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx

from switchboard.events.catalog.outbound import (
    Button,
    Keyboard,
    MediaSource,
    OutMedia,
    OutText,
    SendMessage,
)
from switchboard.outbound.attempts import Attempt
from switchboard.outbound.providers.base import Failure, ProviderError, Scope
from switchboard.runtime.accounts import Account
from switchboard.runtime.fingerprint import fingerprint
from switchboard.sandbox import ManualClock, RetryPolicy, Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
WA_PHONE_ID = "106540352242922"
WA_TOKEN = "EAAJB-test-access-token"
VIBER_TOKEN = "4453b6ac1b35d7a1-e02c5f12174805f9-daec9cbb5448c51c"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x00\x00\x00\x01\x80"
    b"\x08\x02\x00\x00\x00" + b"\x00" * 64
)  # a 512x384 PNG header: enough for the fake to read the size


# One customer as a CAPI event's user_data names them (plain, before hashing), without the
# emails, phones and external ids each test gives in its own shape.
CUSTOMER = {
    "fn": "Zoë",
    "ln": "O'Brien",
    "ct": "San Francisco",
    "st": "CA",
    "zp": "94105-1234",
    "country": "US",
    "db": "19900131",
    "ge": "f",
    "client_ip_address": "203.0.113.7",
    "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "fbc": "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890",
    "fbp": "fb.1.1558571054389.1098115397",
    "lead_id": "525645896321548",
}


def account(channel: str = "telegram", id: str = "shop", **kwargs: Any) -> Account:
    """An account of `channel` with the test secrets of that provider."""
    secrets = {
        "telegram": {"token": TG_TOKEN},
        "whatsapp": {"access_token": WA_TOKEN},
        "viber": {"token": VIBER_TOKEN},
        "generic": {"signing_secret": "whsec_" + base64.b64encode(b"s" * 24).decode()},
    }[channel]
    settings = {"whatsapp": {"phone_number_id": WA_PHONE_ID}}.get(channel, {})
    return Account(
        channel=channel,
        id=id,
        settings={**settings, **kwargs.pop("settings", {})},
        secrets={**secrets, **kwargs.pop("secrets", {})},
        **kwargs,
    )


def command(
    content: Any,
    *,
    channel: str = "telegram",
    recipient: str = "42",
    keyboard: Keyboard | None = None,
    reply_to: str | None = None,
    message_id: str = "m-1",
) -> SendMessage:
    return SendMessage(
        message_id=message_id,
        channel=channel,
        account="shop",
        recipient=recipient,
        content=content,
        keyboard=keyboard,
        reply_to=reply_to,
    )


def record_of(cmd: SendMessage, owner: int | None, **changes: Any) -> Attempt:
    """The attempt record of ``cmd`` in workspace ``demo``: its body's fingerprint, owned by
    the stream message at ``owner``."""
    return Attempt(
        message_id=cmd.message_id,
        workspace_id="demo",
        channel=cmd.channel.value,
        account=cmd.account,
        recipient=cmd.recipient,
        fingerprint=fingerprint(cmd),
        owner=owner,
        **changes,
    )


def text(value: str = "hello", **kwargs: Any) -> OutText:
    return OutText(text=value, **kwargs)


def media(
    kind: str,
    *,
    url: str | None = None,
    file_id: str | None = None,
    data: bytes | None = None,
    caption: str | None = None,
    file_name: str | None = None,
    mime_type: str | None = None,
    size: int | None = None,
) -> OutMedia:
    source = MediaSource(
        url=url,
        file_id=file_id,
        data_base64=base64.b64encode(data).decode() if data is not None else None,
        file_name=file_name,
        mime_type=mime_type,
        size=size,
    )
    return OutMedia(kind=kind, source=source, caption=caption)


def keyboard(*rows: list[Any], type: str = "inline") -> Keyboard:
    """Rows of (text, callback_data, url)."""
    return Keyboard(
        type=type,
        rows=tuple(
            tuple(Button(text=t, callback_data=c, url=u) for t, c, u in row) for row in rows
        ),
    )


def buttons(count: int) -> Keyboard:
    """`count` callback buttons, one per row."""
    return keyboard(*[[(f"Choice {i}", f"c{i}", None)] for i in range(count)])


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Mock:
    """A MockTransport that records requests and answers with queued responses (or a
    callable); `json(i)` and `form(i)` decode the i-th request body."""

    answers: list[httpx.Response | Exception | Handler] = field(default_factory=list)
    default: httpx.Response | Handler | None = None
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else self.default
        if answer is None:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def json(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)

    def form(self, index: int = -1) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
        return multipart(self.requests[index])


def reply(
    status: int = 200, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def multipart(
    request: httpx.Request,
) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """(fields, files) of a multipart request; files map to (filename, type, bytes)."""
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data")
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + request.content
    message = message_from_bytes(raw)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    parts = message.get_payload()
    assert isinstance(parts, list)
    for part in parts:
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        if filename:
            files[name] = (filename, part.get_content_type(), payload)
        else:
            fields[name] = payload.decode()
    return fields, files


def assert_error(
    error: ProviderError,
    failure: Failure,
    code: str | None = None,
    *,
    retry_after: float | None = None,
    scope: Scope | None = None,
) -> None:
    assert error.failure is failure, error
    if code is not None:
        assert error.code == code, error
    if retry_after is not None:
        assert error.retry_after == retry_after, error
    if scope is not None:
        assert error.scope is scope, error


@dataclass
class Env:
    """A served sandbox (all providers under their prefixes) with a manual clock."""

    box: Sandbox
    clock: ManualClock
    url: str
    http: httpx.AsyncClient


@asynccontextmanager
async def sandbox_env() -> AsyncIterator[Env]:
    """Every fake provider on a free port; time only moves when the test says so."""
    config = SandboxConfig()
    fast = RetryPolicy(initial=0.02, factor=2.0, maximum=0.1, timeout=2.0)
    config.telegram.webhook_retry = fast
    config.whatsapp.webhook_retry = fast
    config.viber.webhook_retry = fast
    config.whatsapp.statuses.sent = False
    config.whatsapp.statuses.delivered = False
    config.whatsapp.statuses.read = False
    clock = ManualClock(start=1_750_000_000.0)
    box = Sandbox(config, clock=clock)
    try:
        async with serve(box.app()) as url, httpx.AsyncClient(trust_env=False) as http:
            yield Env(box, clock, url, http)
    finally:
        await box.aclose()
