"""The query API's OpenAPI document: every route with its window, filters and 400."""

from __future__ import annotations

import pytest

from switchboard.analytics.api import ROLLUPS, filters_of
from switchboard.analytics.app import create_app
from switchboard.analytics.params import FILTERS
from switchboard.analytics.settings import AnalyticsSettings

ROLLUPS_BY_PATH = {rollup.path: rollup for rollup in ROLLUPS}
ROUTES = {
    "/v1/messages": {"channel", "account"},
    "/v1/deliveries": {"provider", "account", "campaign"},
    "/v1/latency": {"channel", "account"},
    "/v1/first-response": {"channel", "account"},
    "/v1/funnel": {"source", "campaign"},
    "/v1/campaigns": {"campaign", "provider", "account"},
    "/v1/mtproto": {"account"},
}


@pytest.fixture
def doc() -> dict[str, object]:
    settings = AnalyticsSettings(
        api_keys={"key-00000001": "demo"},
        nats_url="nats://127.0.0.1:1",
        database_url="postgresql://x@127.0.0.1:1/x",
    )
    return create_app(settings).openapi()


def test_every_route_documents_window_filters_and_errors(doc: dict[str, object]) -> None:
    paths: dict[str, dict[str, dict[str, object]]] = doc["paths"]  # type: ignore[assignment]
    assert "/" not in paths  # the dashboard is a page, not API
    for route, filters in ROUTES.items():
        op = paths[route]["get"]
        names = {p["name"] for p in op["parameters"]}  # type: ignore[attr-defined]
        assert {"from", "to", "bucket"} | filters == names, route
        assert "400" in op["responses"], route  # type: ignore[operator]
    assert {"limit"} <= {p["name"] for p in paths["/v1/conversions"]["get"]["parameters"]}  # type: ignore[attr-defined]


def test_every_rollup_filter_is_one_the_views_know() -> None:
    # A filter a parameter model declares but parse_filters does not know would be
    # documented in OpenAPI and then refused as an unknown parameter.
    for rollup in ROLLUPS:
        assert set(filters_of(rollup.params)) <= set(FILTERS), rollup.path
    assert filters_of(ROLLUPS_BY_PATH["/v1/deliveries"].params) == (
        "provider",
        "account",
        "campaign",
    )
    assert filters_of(ROLLUPS_BY_PATH["/v1/conversions"].params) == ()
