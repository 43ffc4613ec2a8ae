"""Size guards on media sent as bytes, against the sandbox with real NATS: over HTTP an
oversize file is a 413 naming the field and the limit, with no provider call and nothing
queued; on the bus it fails permanently (``too_large``) before any provider call."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.support.stack import API_KEY, keyring, service_env

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import MediaSource, OutMedia, SendMessage
from switchboard.outbound.app import create_app
from switchboard.outbound.media_limits import MB
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = pytest.mark.e2e
TOKEN = "300000051:media-a"
A = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Env:
    box: Sandbox
    url: str
    bus: Bus
    http: httpx.AsyncClient

    def provider_calls(self) -> list[Any]:
        # Sends and uploads only: the periodic health probe (getMe) costs no send budget.
        return [r for r in self.box.recorder.requests() if r.method != "getMe"]


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "media_bot")
    async with serve(box.app()) as sandbox, AsyncExitStack() as stack:
        for key, value in service_env(nats_url).items():
            monkeypatch.setenv(key, value)
        # Bodies up to Telegram's upload limits reach the send route (the shell's default
        # limit, 1 MiB, would answer first), so its own per-provider guard is what answers.
        monkeypatch.setenv("SWITCHBOARD_OUTBOUND_MAX_BODY_BYTES", str(64 * MB))
        bus = await Bus.connect(nats_url, name="test")
        stack.push_async_callback(bus.close)
        await bus.provision()
        store = AccountStore(await bus.kv("accounts"), keyring())
        await store.put(
            Account(
                channel=Channel.TELEGRAM,
                id="shop",
                workspace_id="demo",
                settings={"api_base_url": f"{sandbox}/telegram"},
                secrets={"token": TOKEN},
            )
        )
        await store.put(
            Account(
                channel=Channel.WHATSAPP,
                id="100200300",
                workspace_id="demo",
                settings={"api_base_url": f"{sandbox}/whatsapp"},
                secrets={"token": "wa-token"},
            )
        )
        url = await stack.enter_async_context(
            serve_app(create_app(load_settings(OutboundSettings)))
        )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=60))
        yield Env(box, url, bus, http)


def photo(message_id: str, size: int, kind: str = "photo") -> dict[str, Any]:
    return {
        "message_id": message_id,
        "channel": "telegram",
        "account": "shop",
        "recipient": "4201",
        "content": {
            "kind": kind,
            "source": {"data_base64": base64.b64encode(b"\0" * size).decode()},
        },
    }


async def test_an_upload_over_telegrams_photo_limit_is_413_with_no_provider_call(
    env: Env,
) -> None:
    r = await env.http.post(f"{env.url}/v1/messages", json=photo("big", 10 * MB + 1), headers=A)
    assert r.status_code == 413, r.text[:500]
    assert "content.source.data_base64" in r.text
    assert str(10 * MB) in r.text
    # bytes under the provider's limit but over what one queued command can carry
    over_bus = env.bus.nc.max_payload
    assert over_bus < 50 * MB
    r = await env.http.post(
        f"{env.url}/v1/messages", json=photo("doc", over_bus, "document"), headers=A
    )
    assert r.status_code == 413, r.text[:500]
    assert (await env.bus.js.stream_info("OUTBOUND")).state.messages == 0
    assert env.provider_calls() == []
    # a small one goes
    r = await env.http.post(f"{env.url}/v1/messages", json=photo("small", 2048), headers=A)
    assert r.status_code == 202, r.text


async def test_an_oversize_command_on_the_bus_fails_without_a_provider_call(env: Env) -> None:
    sticker = OutMedia(
        kind="sticker",
        source=MediaSource(data_base64=base64.b64encode(b"\0" * (600 * 1024)).decode()),
    )
    await env.bus.publish(
        SendMessage(
            message_id="wa-sticker",
            channel=Channel.WHATSAPP,
            account="100200300",
            recipient="15550001111",
            content=sticker,
        ),
        workspace_id="demo",
    )

    async def failed() -> dict[str, Any] | None:
        r = await env.http.get(f"{env.url}/v1/messages/wa-sticker", headers=A)
        found: dict[str, Any] = r.json()
        return found if r.status_code == 200 and found["status"] == "failed" else None

    record = await eventually(failed, timeout=30)
    assert record["error_code"] == "too_large"
    assert env.provider_calls() == []
