"""Conversion signals on a platform of many workspaces: each workspace's won (or qualified)
leads go to its own Meta pixel, with its own events and currency, and never to another
workspace's. Before, one deployment-wide pixel took every workspace's leads: outbound
refused those of the workspaces that did not own it, one dead letter per conversion, and
no workspace but one could report at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.support.conv import publish_sealed, received
from tests.support.ingest import ADMIN_TOKEN
from tests.support.inprocess import serve_services
from tests.support.stack import API_KEY, OTHER_KEY
from tests.support.telegram_sandbox import serve_telegram_sandbox

from switchboard.events.catalog.common import Channel
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox

pytestmark = pytest.mark.e2e
THIRD_KEY = "third-key-00003"
KEYS = {"demo": API_KEY, "other": OTHER_KEY, "third": THIRD_KEY}
DEPLOYMENT_PIXEL, OTHER_PIXEL = "1111111111", "2222222222"


@dataclass
class Env:
    box: Sandbox
    nats_url: str
    crm: str
    analytics: str
    ingest: str
    sandbox: str
    http: httpx.AsyncClient

    def auth(self, workspace: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEYS[workspace]}"}

    async def add_pixel(self, pixel: str, workspace: str, **settings: str) -> httpx.Response:
        body = {
            "channel": "generic",
            "id": pixel,
            "workspace_id": workspace,
            "settings": {
                "provider": "metacapi",
                "api_base_url": f"{self.sandbox}/graph",
                "graph_version": "v25.0",
                **settings,
            },
            "secrets": {"access_token": f"token-{pixel}"},
        }
        return await self.http.post(
            f"{self.ingest}/admin/accounts",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            json=body,
        )

    async def lead_of(self, workspace: str) -> str:
        async def found() -> str | None:
            r = await self.http.get(f"{self.crm}/v1/leads", headers=self.auth(workspace))
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            return str(items[0]["id"]) if items else None

        return await eventually(found, message=f"{workspace}'s lead")

    async def move(self, workspace: str, lead: str, stage: str) -> None:
        r = await self.http.post(
            f"{self.crm}/v1/leads/{lead}/stage",
            headers=self.auth(workspace),
            json={"to_stage": stage},
        )
        assert r.status_code == 200, r.text

    async def ledger(self, workspace: str) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        window = {"from": (now - timedelta(hours=2)).isoformat(), "to": now.isoformat()}
        r = await self.http.get(
            f"{self.analytics}/v1/conversions", headers=self.auth(workspace), params=window
        )
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


@pytest.fixture
async def env(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    async with serve_telegram_sandbox() as (box, sandbox, stack):
        box.metacapi.add_pixel(DEPLOYMENT_PIXEL, f"token-{DEPLOYMENT_PIXEL}")
        box.metacapi.add_pixel(OTHER_PIXEL, f"token-{OTHER_PIXEL}")
        env = {
            "SWITCHBOARD_API_KEYS": ",".join(f"{k}={ws}" for ws, k in KEYS.items()),
            "SWITCHBOARD_ANALYTICS_CONVERSION_PIXEL": DEPLOYMENT_PIXEL,
            "SWITCHBOARD_ANALYTICS_CONVERSION_EVENTS": "won=Purchase",
        }
        at = await serve_services(stack, monkeypatch, nats_url, postgres_url, sandbox, **env)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        yield Env(box, nats_url, at.crm, at.analytics, at.ingest, sandbox, http)


async def test_each_workspace_s_leads_go_to_its_own_pixel(env: Env) -> None:
    # A setting analytics could not read is refused when the account is saved, by name.
    bad = await env.add_pixel("3333333333", "other", conversion_events="won")
    assert bad.status_code == 422, bad.text
    assert [p["path"] for p in bad.json()["errors"]] == ["settings.conversion_events"]

    # demo owns the deployment's pixel; other has its own, reporting qualified leads in EUR;
    # third has none.
    demo_pixel = await env.add_pixel(DEPLOYMENT_PIXEL, "demo")
    assert demo_pixel.status_code == 201, demo_pixel.text
    # A pixel is a provider we call, not a source that signs webhooks to us: no signing
    # secret is made for it (one would open /webhooks/generic/<pixel>), none rotated.
    assert demo_pixel.json().get("generated_secrets", {}) == {}
    assert demo_pixel.json()["secrets"] == ["access_token"]
    rotated = await env.http.post(
        f"{env.ingest}/admin/accounts/generic/{DEPLOYMENT_PIXEL}/rotate",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert (rotated.status_code, rotated.json()["code"]) == (400, "not_rotatable"), rotated.text
    added = await env.add_pixel(
        OTHER_PIXEL, "other", conversion_events="qualified=Lead", conversion_currency="EUR"
    )
    assert added.status_code == 201, added.text
    for n, workspace in enumerate(KEYS, start=1):
        message = received(Channel.TELEGRAM, "shop", f"{workspace}-ada", "hello", n)
        await publish_sealed(env.nats_url, [message], workspace=workspace)
    leads = {ws: await env.lead_of(ws) for ws in KEYS}

    # third's and other's leads are won first; demo's last, so once demo's conversion is at
    # Meta every earlier stage change has been through the projection that decides.
    await env.move("third", leads["third"], "won")
    await env.move("other", leads["other"], "qualified")
    await env.move("other", leads["other"], "won")  # other reports only qualified leads
    await env.move("demo", leads["demo"], "won")

    async def at_meta() -> tuple[list[Any], list[Any]] | None:
        demo, other = (
            env.box.metacapi.events(DEPLOYMENT_PIXEL),
            env.box.metacapi.events(OTHER_PIXEL),
        )
        return (demo, other) if demo and other else None

    demo_events, other_events = await eventually(at_meta, timeout=30, message="both at Meta")
    assert [(e.event["event_name"], e.event_id) for e in demo_events] == [
        ("Purchase", f"lead.{leads['demo']}.won")
    ]
    assert [(e.event["event_name"], e.event_id) for e in other_events] == [
        ("Lead", f"lead.{leads['other']}.qualified")
    ]
    assert [c["pixel"] for c in await env.ledger("demo")] == [DEPLOYMENT_PIXEL]
    other = await env.ledger("other")
    assert [(c["pixel"], c["event_name"]) for c in other] == [(OTHER_PIXEL, "Lead")]
    assert await env.ledger("third") == []  # nothing decided for a workspace with no pixel
