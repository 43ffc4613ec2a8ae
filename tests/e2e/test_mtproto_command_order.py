"""The MTProto gateway's session commands apply in the order they were published: its
commands durable handed a fetched batch to concurrent handlers, so a ``subscribe`` and an
``unsubscribe`` of one peer published together ran at once, and the session went on reading
a peer its owner had stopped it reading (the unsubscribe found nothing to remove)."""

from __future__ import annotations

import httpx
import pytest
from tests.support.conv import publish_all
from tests.support.stack import API_KEY, service_env

from switchboard.events.catalog.mtproto import Subscribe, Unsubscribe
from switchboard.mtproto.app import create_app
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = pytest.mark.e2e
A = {"Authorization": f"Bearer {API_KEY}"}  # workspace demo


async def test_a_subscribe_and_an_unsubscribe_published_together_end_unsubscribed(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Sandbox(SandboxConfig())
    user, keys = box.mtproto.add_user("+15553020001", first_name="Ord", sessions=1)
    box.mtproto.add_channel("News", "order_news", creator=user)
    async with serve(box.app()) as sandbox, httpx.AsyncClient(timeout=30) as http:
        for key, value in service_env(
            nats_url, postgres_url,
            SWITCHBOARD_MTPROTO_ADAPTER="sandbox", SWITCHBOARD_SANDBOX_URL=sandbox,
        ).items():  # fmt: skip
            monkeypatch.setenv(key, value)
        async with serve_app(create_app(load_settings(MtprotoSettings))) as url:
            r = await http.put(
                f"{url}/v1/sessions/ord",
                headers=A,
                json={"session": keys[0].session, "api_id": 12345, "api_hash": "0" * 32},
            )
            assert r.status_code == 201, r.text
        # the gateway is stopped: its next start fetches both commands as one batch
        await publish_all(
            nats_url,
            [Subscribe(session_id="ord", peer="@order_news"),
             Unsubscribe(session_id="ord", peer="@order_news")],
        )  # fmt: skip
        async with serve_app(create_app(load_settings(MtprotoSettings))) as url:
            bus = await Bus.connect(nats_url, name="order-test")
            try:

                async def both_handled() -> bool:
                    info = await bus.js.consumer_info("MTPROTO", "mtproto-commands")
                    return info.num_pending == 0 and info.num_ack_pending == 0

                await eventually(both_handled, timeout=30)
            finally:
                await bus.close()
            r = await http.get(f"{url}/v1/sessions/ord/subscriptions", headers=A)
            assert r.status_code == 200, r.text
            assert r.json()["items"] == []
