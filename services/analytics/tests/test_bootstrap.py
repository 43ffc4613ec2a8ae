"""The analytics composition root: routes read the typed dependencies its start builds, and a
request that arrives before they exist gets a 503 problem, not a KeyError."""

from __future__ import annotations

from fastapi.testclient import TestClient

from switchboard.analytics.app import create_app
from switchboard.analytics.settings import AnalyticsSettings


def test_a_route_before_start_answers_503_naming_the_service() -> None:
    settings = AnalyticsSettings(
        api_keys={"key-00000001": "demo"},
        nats_url="nats://127.0.0.1:1",
        database_url="postgresql://x@127.0.0.1:1/x",
    )
    client = TestClient(create_app(settings))  # no `with`: the lifespan (start) never runs
    answer = client.get("/v1/messages", headers={"Authorization": "Bearer key-00000001"})
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "unavailable"
    assert "analytics" in answer.json()["detail"]
