"""Meta CAPI fake: dedup bookkeeping, test events, tokens, versions, SDK form bodies, faults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.metacapi import DEMO_ACCESS_TOKEN, DEMO_PIXEL_ID, MetaCapiConfig
from switchboard.sandbox.testing import serve

from .metacapi_support import PIXEL, TOKEN, CapiEnv, capi_env, graph_error

HOUR = 3600


@pytest.fixture
async def capi() -> AsyncIterator[CapiEnv]:
    async with capi_env() as env:
        yield env


# -- deduplication ----------------------------------------------------------------------


async def test_same_event_name_and_id_within_48h_is_a_duplicate(capi: CapiEnv) -> None:
    assert (await capi.post([capi.event(event_id="o-1")])).status_code == 200
    capi.clock.advance(47 * HOUR)
    again = await capi.post([capi.event(event_id="o-1")])
    assert again.json()["events_received"] == 1  # Meta still acknowledges it
    counts = capi.sandbox.metacapi.counts(PIXEL)
    assert (counts.received, counts.unique, counts.duplicates) == (2, 1, 1)
    assert [e.duplicate for e in capi.sandbox.metacapi.events()] == [False, True]


async def test_after_48h_the_same_key_counts_as_new(capi: CapiEnv) -> None:
    await capi.post([capi.event(event_id="o-2")])
    capi.clock.advance(48 * HOUR + 1)
    await capi.post([capi.event(event_id="o-2")])
    assert capi.sandbox.metacapi.counts().duplicates == 0
    capi.clock.advance(HOUR)  # the window restarted at the second event
    await capi.post([capi.event(event_id="o-2")])
    assert capi.sandbox.metacapi.counts().to_json() == {
        "received": 3,
        "unique": 2,
        "duplicates": 1,
    }


async def test_dedup_key_is_pixel_event_name_and_event_id(capi: CapiEnv) -> None:
    capi.sandbox.metacapi.add_pixel("999000999", TOKEN)
    batch = [
        capi.event(event_id="k"),
        capi.event(event_id="k", event_name="AddToCart"),
        capi.event(event_id="k2"),
        capi.event(event_id=None),
        capi.event(event_id=None),
        capi.event(event_id="k"),  # same batch, same key: a duplicate
    ]
    await capi.post(batch)
    await capi.post([capi.event(event_id="k")], pixel="999000999")
    assert capi.sandbox.metacapi.counts(PIXEL).to_json() == {
        "received": 6,
        "unique": 5,
        "duplicates": 1,
    }
    assert capi.sandbox.metacapi.counts("999000999").duplicates == 0
    assert len(capi.sandbox.metacapi.events(duplicate=True, event_name="Purchase")) == 1


# -- test events ------------------------------------------------------------------------


async def test_test_event_code_routes_events_to_test_events(capi: CapiEnv) -> None:
    response = await capi.post([capi.event()], test_event_code="TEST4821")
    assert response.json()["events_received"] == 1
    assert capi.sandbox.metacapi.events() == []
    [test] = capi.sandbox.metacapi.test_events(PIXEL, code="TEST4821")
    assert test.test_event_code == "TEST4821"
    await capi.post([capi.event()])  # the live stream does not see the test event
    assert capi.sandbox.metacapi.counts().to_json() == {
        "received": 1,
        "unique": 1,
        "duplicates": 0,
    }


# -- access, versions and bodies --------------------------------------------------------


async def test_missing_and_unknown_tokens_follow_graph(capi: CapiEnv) -> None:
    missing = await capi.post([capi.event()], token=None)
    assert missing.status_code == 400
    assert graph_error(missing)["code"] == 104
    unknown = await capi.post([capi.event()], token="EAAnope")
    error = graph_error(unknown)
    assert (unknown.status_code, error["code"], error["type"]) == (400, 190, "OAuthException")
    assert "invalid_token" in unknown.headers["www-authenticate"]


async def test_unknown_pixel_and_foreign_token_are_unknown_objects(capi: CapiEnv) -> None:
    capi.sandbox.metacapi.add_pixel("555", "EAAother")
    for pixel, token in (("777", TOKEN), ("555", TOKEN)):
        response = await capi.post([capi.event()], pixel=pixel, token=token)
        error = graph_error(response)
        assert (error["type"], error["code"], error["error_subcode"]) == (
            "GraphMethodException",
            100,
            33,
        )
        assert f"Object with ID '{pixel}' does not exist" in error["message"]


async def test_expired_token_is_190_463(capi: CapiEnv) -> None:
    capi.sandbox.metacapi.expire_token(TOKEN)
    error = graph_error(await capi.post([capi.event()]))
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert "Session has expired" in error["message"]


async def test_versions_any_by_default_or_a_configured_list() -> None:
    config = SandboxConfig(metacapi=MetaCapiConfig(versions=("v24.0", "v25.0")))
    async with capi_env(config) as capi:
        assert (await capi.post([capi.event()], version="v24.0")).status_code == 200
        old = graph_error(await capi.post([capi.event()], version="v19.0"))
        assert old["code"] == 2635
        assert "v25.0" in old["message"]
        bogus = graph_error(await capi.post([capi.event()], version="latest"))
        assert bogus["code"] == 2500
    async with capi_env() as capi:
        assert (await capi.post([capi.event()], version="v31.0")).status_code == 200


async def test_sdk_style_form_body_with_data_as_json_string(capi: CapiEnv) -> None:
    """facebook-business posts `data` as a JSON array of JSON-encoded event strings."""
    events = [json.dumps(capi.event()), capi.event(event_id="2")]
    form = {"data": json.dumps(events), "test_event_code": ""}
    response = await capi.http.post(
        f"/v25.0/{PIXEL}/events", params={"access_token": TOKEN}, data=form
    )
    assert response.json()["events_received"] == 2
    assert [e.event["event_id"] for e in capi.sandbox.metacapi.events()] == ["order-1", "2"]
    broken = await capi.http.post(
        f"/v25.0/{PIXEL}/events", params={"access_token": TOKEN}, data={"data": '["{oops"]'}
    )
    assert "data[0] is not a valid JSON event" in graph_error(broken)["error_user_msg"]


async def test_token_in_body_or_bearer_header(capi: CapiEnv) -> None:
    in_body = await capi.http.post(
        f"/v25.0/{PIXEL}/events", json={"data": [capi.event()], "access_token": TOKEN}
    )
    assert in_body.status_code == 200
    in_header = await capi.http.post(
        f"/v25.0/{PIXEL}/events",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"data": [capi.event()]},
    )
    assert in_header.status_code == 200


# -- faults and retries -----------------------------------------------------------------


async def test_injected_5xx_is_transient_and_nothing_is_counted(capi: CapiEnv) -> None:
    """A client retries 5xx (the fake then counts the batch once) but not 4xx."""
    capi.sandbox.set_fault("metacapi", PIXEL, error_rate=1.0, error_status=503)
    failed = await capi.post([capi.event()])
    assert failed.status_code == 503
    error = graph_error(failed)
    assert (error["code"], error["is_transient"]) == (2, True)
    assert capi.sandbox.metacapi.events() == []
    capi.sandbox.clear_faults()
    assert (await capi.post([capi.event()])).status_code == 200
    assert capi.sandbox.metacapi.counts().received == 1
    records = capi.sandbox.recorder.requests(provider="metacapi", account=PIXEL)
    assert [(r.status, r.fault) for r in records] == [(503, "error"), (200, None)]


async def test_hang_outlasts_the_client_timeout(capi: CapiEnv) -> None:
    capi.sandbox.set_fault("metacapi", hang_rate=1.0, hang_seconds=30)
    with pytest.raises(httpx.ReadTimeout):
        await capi.http.post(
            f"/v25.0/{PIXEL}/events",
            params={"access_token": TOKEN},
            json={"data": [capi.event()]},
            timeout=0.2,
        )
    assert capi.sandbox.metacapi.events() == []


# -- control API and mounting -----------------------------------------------------------


async def test_control_routes_manage_pixels_and_report_events(capi: CapiEnv) -> None:
    http = capi.http
    created = await http.post(
        "/_sandbox/metacapi/pixels", json={"pixel_id": "4242", "access_token": "EAAnew"}
    )
    assert created.json() == {"pixel_id": "4242", "access_tokens": ["EAAnew"]}
    await capi.post(
        [capi.event(event_id="x"), capi.event(event_id="x")], pixel="4242", token="EAAnew"
    )
    await capi.post([capi.event()], pixel="4242", token="EAAnew", test_event_code="T1")
    listed = (await http.get("/_sandbox/metacapi/events", params={"pixel": "4242"})).json()
    assert (listed["count"], listed["unique"], listed["duplicates"]) == (2, 1, 1)
    assert listed["events"][1]["duplicate"] is True
    assert listed["events"][0]["event"]["event_id"] == "x"
    dups = await http.get(
        "/_sandbox/metacapi/events", params={"duplicate": "true", "include": "false"}
    )
    assert "event" not in dups.json()["events"][0]
    tests = (await http.get("/_sandbox/metacapi/test_events", params={"code": "T1"})).json()
    assert tests["count"] == 1
    pixel = (await http.get("/_sandbox/metacapi/pixels/4242")).json()
    assert (pixel["received"], pixel["duplicates"], pixel["test_events"]) == (2, 1, 1)
    settings = await http.put("/_sandbox/metacapi/settings", json={"max_events": 2})
    assert settings.json()["max_events"] == 2
    too_many = await capi.post([capi.event()] * 3, pixel="4242", token="EAAnew")
    assert "at most 2 events" in graph_error(too_many)["error_user_msg"]
    bad = await http.put("/_sandbox/metacapi/settings", json={"nope": 1})
    assert bad.status_code == 400
    expire = await http.post("/_sandbox/metacapi/tokens/expire", json={"access_token": "EAAnew"})
    assert expire.json() == {"expired": True}
    assert (await http.delete("/_sandbox/metacapi/events")).json() == {"cleared": True}
    assert (await http.get("/_sandbox/metacapi/events")).json()["count"] == 0


async def test_combined_app_mounts_capi_under_graph_with_the_demo_pixel() -> None:
    box = Sandbox(SandboxConfig(demo=True))
    try:
        async with serve(box.app()) as url, httpx.AsyncClient(base_url=url) as http:
            now = int(box.clock.time())
            event = {
                "event_name": "Lead",
                "event_time": now,
                "action_source": "system_generated",
                "user_data": {"external_id": "crm-1"},
            }
            response = await http.post(
                f"/graph/v25.0/{DEMO_PIXEL_ID}/events",
                params={"access_token": DEMO_ACCESS_TOKEN},
                json={"data": [event]},
            )
            assert response.json()["events_received"] == 1
            state = (await http.get("/_sandbox/state")).json()["metacapi"]
            assert state["events"] == {"received": 1, "unique": 1, "duplicates": 0}
    finally:
        await box.aclose()
    assert box.recorder.requests(provider="metacapi", account=DEMO_PIXEL_ID, method="events")
