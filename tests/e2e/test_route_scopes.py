"""Every route of every service declares what a key needs in its OpenAPI document (reads
``read``, anything that sends or changes ``send``, operator things of a workspace ``admin``,
operator routes the operator token), and that is what is enforced: walking each document, a
key holding every scope but the declared one gets 403 and a key holding only the declared
one gets past the check. Every route of every service refuses an oversized body with 413
before any work is done.

The apps are called without starting them: both refusals happen before a handler runs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from tests.support.stack import service_env

from switchboard.runtime.app import ServiceApp
from switchboard.runtime.settings import load_settings

READ_ONLY = "scope-read-key1"
SEND_ONLY = "scope-send-key1"
# For each scope: a key holding only it, and a key holding every other scope but it.
ONLY = {"read": READ_ONLY, "send": SEND_ONLY, "admin": "scope-admin-key"}
ALL_BUT = {"read": "no-read-key01", "send": "no-send-key01", "admin": "no-admin-key1"}
SERVICES = ["ingest", "crm", "outbound", "mtproto", "analytics", "flows"]
KEYS = (
    f"{READ_ONLY}=demo:read,{SEND_ONLY}=demo:send,scope-admin-key=demo:admin,"
    "no-read-key01=demo:send+admin,no-send-key01=demo:read+admin,no-admin-key1=demo:read+send"
)


def _apps() -> dict[str, Callable[[], ServiceApp]]:
    from switchboard.analytics.app import create_app as analytics
    from switchboard.analytics.settings import AnalyticsSettings
    from switchboard.crm.app import create_app as crm
    from switchboard.crm.settings import CrmSettings
    from switchboard.flows.app import create_app as flows
    from switchboard.flows.settings import FlowsSettings
    from switchboard.ingest.app import create_app as ingest
    from switchboard.ingest.settings import IngestSettings
    from switchboard.mtproto.app import create_app as mtproto
    from switchboard.mtproto.settings import MtprotoSettings
    from switchboard.outbound.app import create_app as outbound
    from switchboard.outbound.settings import OutboundSettings

    return {
        "ingest": lambda: ingest(load_settings(IngestSettings)),
        "crm": lambda: crm(load_settings(CrmSettings)),
        "outbound": lambda: outbound(load_settings(OutboundSettings)),
        "mtproto": lambda: mtproto(
            load_settings(MtprotoSettings, adapter="sandbox", sandbox_url="http://127.0.0.1:9")
        ),
        "analytics": lambda: analytics(load_settings(AnalyticsSettings)),
        "flows": lambda: flows(load_settings(FlowsSettings)),
    }


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    env = service_env("nats://127.0.0.1:9", "postgresql://x@127.0.0.1:9/x",
                      SWITCHBOARD_API_KEYS=KEYS, SWITCHBOARD_MAX_BODY_BYTES=4096)  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _operations(app: ServiceApp) -> list[tuple[str, str]]:
    ops = []
    for path, item in app.openapi()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        ops.extend((method.upper(), concrete) for method in item)
    return ops


def _declared(app: ServiceApp) -> list[tuple[str, str, str]]:
    """(method, path, scope) of every operation a workspace key may call, as documented."""
    found = []
    for path, item in app.openapi()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        for method, op in item.items():
            for requirement in op.get("security", []):
                for scope in requirement.get("apiKey", []):
                    found.append((method.upper(), concrete, scope))
    return found


def _client(app: ServiceApp) -> httpx.AsyncClient:
    # (a handler past the checks may fail without a running service: an answer, not a raise)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


@pytest.mark.parametrize("service", SERVICES)
async def test_every_route_declares_its_scope_and_it_is_enforced(service: str) -> None:
    app = _apps()[service]()
    doc = app.openapi()
    # Every operation says what it needs, except the provider webhooks (signed).
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op.get("security") or path.startswith("/webhooks/"), (method, path)
    declared = _declared(app)
    if service != "ingest":
        assert declared, "no workspace route found"
    async with _client(app) as http:
        for method, path, scope in declared:
            without = {"Authorization": f"Bearer {ALL_BUT[scope]}"}
            lacking = await http.request(method, path, json={}, headers=without)
            assert lacking.status_code == 403, (method, path, scope, lacking.text)
            only = {"Authorization": f"Bearer {ONLY[scope]}"}
            holding = await http.request(method, path, json={}, headers=only)
            # (past the key check the handler may fail without a running service: any
            # answer but a refusal of the key proves the declared scope is the one needed)
            assert holding.status_code not in (401, 403), (method, path, scope, holding.text)


@pytest.mark.parametrize("service", SERVICES)
async def test_every_route_refuses_an_oversized_body(service: str) -> None:
    app = _apps()[service]()
    routes = [*_operations(app), ("POST", "/login"), ("POST", "/webhooks/telegram/x1")]
    big = b"{" + b" " * 5000 + b"}"
    json = {"Content-Type": "application/json"}
    async with _client(app) as http:
        for method, path in routes:
            r = await http.request(method, path, content=big, headers=json)
            assert r.status_code == 413, (method, path, r.status_code)
        # Streamed without a Content-Length: refused as it arrives, wherever a body is read.
        own = {"ingest": ("POST", "/webhooks/telegram/x1"), "analytics": ("POST", "/login")}
        readers = [*_body_operations(app), *([own[service]] if service in own else [])]
        for method, path in readers:
            auth = {"Authorization": f"Bearer {SEND_ONLY if method != 'GET' else READ_ONLY}"}
            r = await http.request(method, path, content=_chunks(big), headers={**json, **auth})
            assert r.status_code == 413, (method, path, r.status_code, r.text)


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 1000):
        yield body[i : i + 1000]


def _body_operations(app: ServiceApp) -> list[tuple[str, str]]:
    """The operations whose OpenAPI document declares a request body (FastAPI reads it)."""
    ops = []
    for path, item in app.openapi()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        ops.extend((m.upper(), concrete) for m, op in item.items() if "requestBody" in op)
    return ops
