"""Size guards on media sent as bytes, against the sandbox with real NATS: over HTTP an
oversize file is a 413 naming the field and the limit, with no provider call and nothing
queued; on the bus it fails permanently (``too_large``) before any provider call."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.support.outbound import OutboundStack, outbound_stack, sandbox_account, telegram_shop
from tests.support.stack import API_KEY

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import MediaSource, OutMedia, SendMessage
from switchboard.outbound.media_limits import MB
from switchboard.runtime.accounts import Account
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
TOKEN = "300000051:media-a"
A = {"Authorization": f"Bearer {API_KEY}"}


class Env(OutboundStack):
    def provider_calls(self) -> list[Any]:
        # Sends and uploads only: the periodic health probe (getMe) costs no send budget.
        return [r for r in self.box.recorder.requests() if r.method != "getMe"]


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "media_bot")

    def accounts(sandbox: str) -> list[Account]:
        whatsapp = {"token": "wa-token"}
        return [
            telegram_shop(sandbox, TOKEN),
            sandbox_account(sandbox, Channel.WHATSAPP, "100200300", whatsapp),
        ]

    # Bodies up to Telegram's upload limits reach the send route (the shell's default
    # limit, 1 MiB, would answer first), so its own per-provider guard is what answers.
    limit = {"SWITCHBOARD_OUTBOUND_MAX_BODY_BYTES": 64 * MB}
    async with outbound_stack(box, nats_url, monkeypatch, accounts, **limit) as stack:
        yield Env(**vars(stack))


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
