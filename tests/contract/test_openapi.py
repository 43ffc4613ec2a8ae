"""The HTTP contracts: every documented endpoint is in the service's OpenAPI document, with
its error answers, and every error body has the one shape."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from tests.support.stack import service_env

from switchboard.crm.app import create_app as create_crm
from switchboard.crm.settings import CrmSettings
from switchboard.ingest.app import create_app as create_ingest
from switchboard.ingest.fastpath import CHANNELS, WEBHOOKS
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.settings import load_settings


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in service_env("nats://127.0.0.1:1", "postgresql://x@127.0.0.1:1/x").items():
        monkeypatch.setenv(key, value)


def test_ingest_documents_every_webhook_and_its_errors() -> None:
    doc = create_ingest(load_settings(IngestSettings)).openapi()
    paths = doc["paths"]
    for provider in ("telegram", "whatsapp", "viber"):
        assert f"/webhooks/{provider}/{{account}}" in paths
    assert "/webhooks/generic/{source}" in paths
    assert "get" in paths["/webhooks/whatsapp/{account}"]
    for path, ops in paths.items():
        if path.startswith("/webhooks/") and "post" in ops:
            assert {"200", "400", "401", "404", "413", "415", "429", "503"} <= set(
                ops["post"]["responses"]
            ), path
    for admin in (
        "/admin/accounts",
        "/admin/accounts/{channel}/{account_id}/rotate",
        "/admin/accounts/{channel}/{account_id}",
        "/admin/keys/reencrypt",
    ):
        assert admin in paths


def test_crm_documents_its_read_api() -> None:
    paths = create_crm(load_settings(CrmSettings)).openapi()["paths"]
    assert "/v1/conversations" in paths
    assert "/v1/conversations/{conversation_id}/messages" in paths
    assert "422" in paths["/v1/campaigns"]["post"]["responses"]


def test_ingest_webhook_posts_are_documented_from_the_fast_path_and_not_routed() -> None:
    """The fast path answers every webhook POST before routing: a routed POST handler could
    never run, so none exists, and the document lists exactly the channels it serves."""
    app = create_ingest(load_settings(IngestSettings))
    routed = {
        (route.path, method)
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/webhooks/")
        for method in route.methods
    }
    assert routed == {("/webhooks/whatsapp/{account}", "GET")}
    paths = app.openapi()["paths"]
    posts = {p for p, ops in paths.items() if p.startswith("/webhooks/") and "post" in ops}
    assert posts == {w.path for w in WEBHOOKS}
    assert {p.split("/")[2] for p in posts} == set(CHANNELS)
