"""Active health: the periodic probe of each provider account (against the sandbox), when it
is due, what it reports, and the /health/integrations handler over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account
from switchboard.runtime.integrations import Prober, integrations_endpoint, probe_due
from switchboard.runtime.provider_checks import Endpoints
from switchboard.sandbox import Sandbox, SandboxConfig

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_probe_is_due_only_when_nothing_proved_the_account_recently() -> None:
    minute = timedelta(minutes=1)
    assert probe_due(None, None, NOW, 300)
    assert not probe_due(NOW - minute, None, NOW, 300)
    assert probe_due(NOW - 5 * minute, None, NOW, 300)
    # real traffic that succeeded within the interval is proof enough: no probe
    assert not probe_due(None, NOW - minute, NOW, 300)
    assert probe_due(None, NOW - 6 * minute, NOW, 300)
    # a failed probe is repeated within a minute, not after the full interval
    assert not probe_due(NOW - 30 * timedelta(seconds=1), None, NOW, 300, failed=True)
    assert probe_due(NOW - minute, None, NOW, 300, failed=True)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot("123456:good-token", "shop_bot")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=box.app())) as client:
        yield client


def _bot(account_id: str, token: str) -> Account:
    return Account(
        channel=Channel.TELEGRAM,
        id=account_id,
        workspace_id="demo",
        secrets={"token": token},
        settings={"api_base_url": "http://sandbox/telegram"},
    )


async def test_probes_report_each_account_and_skip_what_traffic_proves(
    http: httpx.AsyncClient,
) -> None:
    accounts = [
        _bot("shop", "123456:good-token"),
        _bot("stale", "123456:revoked-token"),
        _bot("busy", "123456:good-token"),
        Account(channel=Channel.GENERIC, id="erp", workspace_id="demo"),  # no provider
    ]
    traffic = {"telegram/busy": NOW - timedelta(seconds=10)}
    prober = Prober(http, Endpoints(), lambda: accounts, ["telegram"], 300, traffic.get)

    assert await prober.probe_due_accounts(NOW) == 2
    report = prober.report()
    assert set(report) == {"telegram/shop", "telegram/stale", "telegram/busy"}
    shop, stale = report["telegram/shop"], report["telegram/stale"]
    assert shop["ok"] is True
    assert shop["facts"]["username"] == "shop_bot"
    assert shop["last_success_at"] is not None
    assert shop["p95_latency_ms"] is not None
    assert stale["ok"] is False
    assert "secrets.token" in stale["last_error"]
    assert report["telegram/busy"]["ok"] is None  # never probed: its sends prove it

    assert await prober.probe_due_accounts(NOW + timedelta(seconds=1)) == 0  # rate-limited
    assert prober.report()["telegram/shop"]["probes_skipped"] == 1
    accounts.pop(0)
    await prober.probe_due_accounts(NOW + timedelta(seconds=2))
    assert "telegram/shop" not in prober.report()  # a removed account leaves the report


async def test_the_endpoint_says_unhealthy_when_a_probe_fails(http: httpx.AsyncClient) -> None:
    prober = Prober(http, Endpoints(), lambda: [_bot("stale", "1:x")], ["telegram"], 300)
    await prober.probe_due_accounts(NOW)

    def report() -> dict[str, dict[str, object]]:
        return {key: {"state": "closed", "probe": p} for key, p in prober.report().items()}

    app = Starlette(routes=[Route("/health/integrations", integrations_endpoint(report))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        body = (await client.get("http://svc/health/integrations")).json()
    assert body["healthy"] is False
    assert body["integrations"]["telegram/stale"]["probe"]["ok"] is False
