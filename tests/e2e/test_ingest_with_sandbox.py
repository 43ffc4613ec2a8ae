"""Ingest as providers really reach it: the admin API registers a bot with the sandbox's
Telegram (getMe, setWebhook), and the sandbox delivers simulated users' updates."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from tests.support.ingest import ADMIN, ingest_behind_sandbox
from tests.support.ingest import IngestEnv as Env
from tests.support.stack import webhook_secret
from tests.support.streams import by_type, stream_count, stream_messages

from switchboard.runtime.embedded import EmbeddedNats
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
TOKEN = "200000001:e2e-token"
KIND_TO_EVENT = {
    "edited_message": "conv.message_edited",
    "callback_query": "conv.callback_received",
    "my_chat_member": "conv.contact_status_changed",
}


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "e2e_bot")
    async with ingest_behind_sandbox(
        box, nats_url, monkeypatch, "telegram", SWITCHBOARD_INGEST_PUBLISH_TIMEOUT_S=1
    ) as env:
        yield env


async def _register(env: Env) -> None:
    r = await env.http.post(
        f"{env.ingest}/admin/accounts",
        headers=ADMIN,
        json={
            "channel": "telegram",
            "id": "shop",
            "workspace_id": "acme",
            "secrets": {"token": TOKEN},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["secrets"] == ["token", "webhook_secret"]
    assert TOKEN not in r.text


async def test_admin_registers_the_bot_and_simulated_users_arrive_as_events(
    env: Env, nats_url: str
) -> None:
    assert (await env.http.get(f"{env.ingest}/admin/accounts")).status_code == 401
    await _register(env)
    info = (await env.http.get(f"{env.sandbox}/telegram/bot{TOKEN}/getWebhookInfo")).json()
    assert info["result"]["url"] == f"{env.ingest}/webhooks/telegram/shop"
    assert [r.method for r in env.box.recorder.requests(provider="telegram")][:2] == [
        "getMe",
        "setWebhook",
    ]

    generated = await env.box.telegram.generate(TOKEN, count=80, rate=200, seed=11)
    await env.box.telegram.wait_delivered(TOKEN, timeout=30)
    expected = Counter(KIND_TO_EVENT.get(g.kind, "conv.message_received") for g in generated)

    async def normalized() -> dict[str, int] | None:
        counts = by_type(await stream_messages(nats_url, "CONV"))
        return counts if counts == dict(expected) else None

    await eventually(normalized, timeout=20, message=f"CONV holds {dict(expected)}")
    conv = await stream_messages(nats_url, "CONV")
    assert {d.envelope.workspace_id for d in conv} == {"acme"}
    assert len({d.envelope.id for d in conv}) == len(conv)
    assert not [d for d in env.box.recorder.deliveries(provider="telegram") if not d.ok]

    # Telegram redelivering an update (same update_id) changes nothing.
    secret = await webhook_secret(nats_url, "shop")
    for g in generated[:5]:
        r = await env.http.post(
            f"{env.ingest}/webhooks/telegram/shop",
            json=g.update,
            headers={"X-Telegram-Bot-Api-Secret-Token": secret},
        )
        assert r.status_code == 200
    assert await stream_count(nats_url, "RAW") == 80


async def test_bus_outage_is_503_and_telegrams_retry_delivers_everything(
    env: Env, nats_url: str, nats_server: EmbeddedNats | None
) -> None:
    if nats_server is None:
        pytest.skip("needs an embedded NATS it can stop")
    await _register(env)
    nats_server.stop()
    await env.box.telegram.generate(TOKEN, count=5, rate=100, seed=5, mix={"text": 1})

    async def failing() -> bool:
        info = (await env.http.get(f"{env.sandbox}/telegram/bot{TOKEN}/getWebhookInfo")).json()
        return "503" in (info["result"].get("last_error_message") or "")

    await eventually(failing, message="Telegram sees 503 while the bus is down")
    assert (await env.http.get(f"{env.ingest}/readyz")).status_code == 503
    nats_server.start()
    await env.box.telegram.wait_delivered(TOKEN, timeout=60)

    async def all_there() -> bool:
        return len(await stream_messages(nats_url, "CONV")) == 5

    await eventually(all_there, timeout=20, message="all 5 messages normalized")
