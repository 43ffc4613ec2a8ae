"""Schemathesis over every service's HTTP API (from its own OpenAPI document), against the
real app on real NATS and Postgres: whatever a client sends, the answer is never a 5xx, is
JSON where it says so, and a wrong method gets 405 with an ``Allow`` header.

Found so far: NUL characters in a query reached Postgres (500); unknown ids with characters
no KV key may hold reached the accounts bucket (500); accounts encrypted with a retired key
made the admin listing fail (500).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

import pytest
from tests.support.stack import API_KEY, service_env

from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import serve_app
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = pytest.mark.e2e
ADMIN = "fuzz-admin-token-1"
CHECKS = (
    "not_a_server_error,unsupported_method,content_type_conformance,response_headers_conformance"
)
# service -> (settings class, the bearer token its API takes)
SERVICES = {
    "ingest": ("IngestSettings", ADMIN),
    "crm": ("CrmSettings", API_KEY),
    "outbound": ("OutboundSettings", API_KEY),
    "mtproto": ("MtprotoSettings", API_KEY),  # a workspace's key: its sessions
    "analytics": ("AnalyticsSettings", API_KEY),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_no_request_makes_a_service_fail(
    service: str,
    nats_url: str,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    settings_name, bearer = SERVICES[service]
    async with serve(Sandbox(SandboxConfig()).app()) as sandbox:
        for key, value in service_env(
            nats_url,
            postgres_url,
            SWITCHBOARD_ADMIN_TOKEN=ADMIN,
            SWITCHBOARD_API_KEY_PEPPER="fuzz-pepper-0123456789abcdef",  # /admin/api-keys too
            SWITCHBOARD_MTPROTO_ADAPTER="sandbox",  # sessions live in the fake Telegram
            SWITCHBOARD_SANDBOX_URL=sandbox,
            # Waits for a session's holder answer 202/504 well inside the fuzzer's 10 s
            # request timeout (the contract is under test here, not how long a holder takes).
            SWITCHBOARD_MTPROTO_API_WAIT_S="2",
        ).items():
            monkeypatch.setenv(key, value)
        await _fuzz(service, settings_name, bearer, tmp_path)


async def _fuzz(service: str, settings_name: str, bearer: str, tmp_path: Path) -> None:
    app_module = importlib.import_module(f"switchboard.{service}.app")
    settings_cls = getattr(
        importlib.import_module(f"switchboard.{service}.settings"), settings_name
    )
    app = app_module.create_app(load_settings(settings_cls))
    async with serve_app(app) as url:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{url}/openapi.json",
            "--header",
            f"Authorization: Bearer {bearer}",
            "--checks",
            CHECKS,
            "--max-examples",
            "25",
            "--seed",
            "20261121",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,  # schemathesis may write its cassettes and config lookups here
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 110)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
    assert "generated" in report, report[-2000:]
