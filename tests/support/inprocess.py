"""The platform's HTTP services run in-process against one sandbox: ingest at the public URL
the providers call, the CRM, outbound and analytics."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from switchboard.analytics.app import create_app as analytics_app
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.crm.app import create_app as crm_app
from switchboard.crm.settings import CrmSettings
from switchboard.ingest.app import create_app as ingest_app
from switchboard.ingest.settings import IngestSettings
from switchboard.outbound.app import create_app as outbound_app
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.embedded import free_port
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import serve_app
from tests.support.ingest import ADMIN_TOKEN
from tests.support.stack import service_env


@dataclass(frozen=True)
class Services:
    """Where each service answers."""

    ingest: str
    crm: str
    analytics: str


async def serve_services(
    stack: AsyncExitStack,
    monkeypatch: pytest.MonkeyPatch,
    nats_url: str,
    postgres_url: str,
    sandbox: str,
    *,
    outbound: AsyncExitStack | None = None,
    **env: Any,
) -> Services:
    """Serve ingest (admin token :data:`~tests.support.ingest.ADMIN_TOKEN`, Telegram's API
    the sandbox's), the CRM, outbound and analytics until ``stack`` closes (outbound until
    ``outbound`` does, when given, so that a test can stop it alone); ``env`` sets more of
    their settings."""
    port = free_port()
    for key, value in service_env(
        nats_url,
        postgres_url,
        SWITCHBOARD_ADMIN_TOKEN=ADMIN_TOKEN,
        SWITCHBOARD_INGEST_PUBLIC_URL=f"http://127.0.0.1:{port}",
        SWITCHBOARD_INGEST_TELEGRAM_API_URL=f"{sandbox}/telegram",
        **env,
    ).items():
        monkeypatch.setenv(key, value)
    ingest = await stack.enter_async_context(
        serve_app(ingest_app(load_settings(IngestSettings)), port=port)
    )
    crm = await stack.enter_async_context(serve_app(crm_app(load_settings(CrmSettings))))
    await (outbound or stack).enter_async_context(
        serve_app(outbound_app(load_settings(OutboundSettings)))
    )
    analytics = await stack.enter_async_context(
        serve_app(analytics_app(load_settings(AnalyticsSettings)))
    )
    return Services(ingest, crm, analytics)
