"""Calendar posts to WhatsApp and Viber audiences end to end: through the outbound stack
(real NATS, the scheduled send, the provider clients) to the sandbox's WhatsApp Cloud API and
Viber bot, each at its time (not before), once, and shown published in ``GET /v1/calendar``;
the overlap check is per destination, so the two go out at the same moment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.support.outbound import outbound_stack, sandbox_account
from tests.support.stack import API_KEY

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig

pytestmark = pytest.mark.e2e
A = {"Authorization": f"Bearer {API_KEY}"}
WA_NUMBER = "100200451"
WA_TOKEN = "wa-calendar-token"
WA_USER = "15550004545"
VIBER_TOKEN = "viber-calendar-token-0001"
VIBER_USER = "vb-user-01=="


@dataclass
class Env:
    box: Sandbox
    url: str
    http: httpx.AsyncClient

    async def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.http.request(method, self.url + path, headers=A, **kw)


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    box = Sandbox(SandboxConfig())
    box.whatsapp.add_number(WA_NUMBER, WA_TOKEN)
    # the user wrote lately: their 24 h window is open for free-form messages
    box.whatsapp.add_user(WA_NUMBER, WA_USER, "Olena", last_inbound_at=box.clock.time())
    box.viber.add_bot(VIBER_TOKEN, "Shop News")
    box.viber.add_user(VIBER_TOKEN, VIBER_USER, "Taras")

    def accounts(sandbox: str) -> list[Account]:
        return [
            sandbox_account(sandbox, Channel.WHATSAPP, WA_NUMBER, {"access_token": WA_TOKEN},
                            phone_number_id=WA_NUMBER),
            sandbox_account(sandbox, Channel.VIBER, "shopnews", {"token": VIBER_TOKEN},
                            sender_name="Shop News"),
        ]  # fmt: skip

    async with outbound_stack(box, nats_url, monkeypatch, accounts, timeout=30) as stack:
        yield Env(box, stack.url, stack.http)


async def test_posts_to_a_whatsapp_and_a_viber_audience_go_out_at_their_time(env: Env) -> None:
    at = datetime.now(UTC) + timedelta(seconds=4)
    destinations = {
        "whatsapp": {"channel": "whatsapp", "account": WA_NUMBER, "chat": WA_USER},
        "viber": {"channel": "viber", "account": "shopnews", "chat": VIBER_USER},
    }
    posts: dict[str, dict[str, Any]] = {}
    for name, destination in destinations.items():
        body = {
            "destination": destination,
            "at": at.isoformat(),
            "content": {"kind": "text", "text": f"Weekly deals on {name}"},
        }
        r = await env.call("POST", "/v1/calendar/posts", json=body)
        assert r.status_code == 201, r.text  # another destination: no overlap between them
        posts[name] = r.json()
        assert posts[name]["status"] == "scheduled"

    async def both_sent() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        wa = env.box.whatsapp.sent_messages(WA_NUMBER, WA_USER)
        vb = env.box.viber.sent_messages(VIBER_TOKEN, VIBER_USER)
        return (wa, vb) if wa and vb else None

    wa, vb = await eventually(both_sent, timeout=30, message="both posts reached the providers")
    assert [m["message"]["text"]["body"] for m in wa] == ["Weekly deals on whatsapp"]
    assert [m["message"]["text"] for m in vb] == ["Weekly deals on viber"]
    assert vb[0]["message"]["sender"]["name"] == "Shop News"
    for sent in (wa[0], vb[0]):
        assert sent["at"] >= at.timestamp()  # not before the post's time

    async def published() -> dict[str, str] | None:
        r = await env.call("GET", "/v1/calendar")
        assert r.status_code == 200, r.text
        found = {p["post_id"]: p["status"] for p in r.json()["posts"]}
        return found if set(found.values()) == {"published"} else None

    shown = await eventually(published, timeout=30, message="the calendar shows both published")
    assert shown == {p["post_id"]: "published" for p in posts.values()}
    r = await env.call("GET", "/v1/calendar")
    channels = {p["destination"]["channel"] for p in r.json()["posts"]}
    assert channels == {"whatsapp", "viber"}
