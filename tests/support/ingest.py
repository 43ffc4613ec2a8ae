"""Ingest served in-process where the sandbox's providers reach it as they reach it in
production: their webhooks at ingest's public URL, ingest's calls at the sandbox's APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from switchboard.ingest.app import create_app
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.embedded import free_port
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import serve_app
from switchboard.sandbox import Sandbox
from switchboard.sandbox.testing import serve
from tests.support.stack import service_env

ADMIN_TOKEN = "admin-token-123"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class IngestEnv:
    box: Sandbox
    sandbox: str
    ingest: str
    http: httpx.AsyncClient


@asynccontextmanager
async def ingest_behind_sandbox(
    box: Sandbox, nats_url: str, monkeypatch: pytest.MonkeyPatch, api: str, **env: Any
) -> AsyncIterator[IngestEnv]:
    """Serve ``box`` and an ingest (admin token :data:`ADMIN_TOKEN`) whose public URL is its
    own address and whose ``api`` provider API (``telegram``, ``viber``) is the sandbox's;
    ``env`` sets more of its settings (and wins over these)."""
    port = free_port()
    async with serve(box.app()) as sandbox:
        for key, value in service_env(
            nats_url,
            **{
                "SWITCHBOARD_ADMIN_TOKEN": ADMIN_TOKEN,
                "SWITCHBOARD_INGEST_PUBLIC_URL": f"http://127.0.0.1:{port}",
                f"SWITCHBOARD_INGEST_{api.upper()}_API_URL": f"{sandbox}/{api}",
                **env,
            },
        ).items():
            monkeypatch.setenv(key, value)
        app = create_app(load_settings(IngestSettings))
        async with serve_app(app, port=port) as ingest, httpx.AsyncClient(timeout=10) as http:
            yield IngestEnv(box, sandbox, ingest, http)
