"""Meta CAPI fake validates events as Meta does: one bad event rejects the whole batch."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from .metacapi_support import EMAIL_HASH, PHONE_HASH, CapiEnv, capi_env, graph_error


@pytest.fixture
async def capi() -> AsyncIterator[CapiEnv]:
    async with capi_env() as env:
        yield env


def assert_rejected(capi: CapiEnv, response: Any, *needles: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error = graph_error(response)
    assert (error["type"], error["code"], error["message"]) == (
        "OAuthException",
        100,
        "Invalid parameter",
    )
    assert error["is_transient"] is False
    for needle in needles:
        assert needle in error["error_user_msg"]
    assert capi.sandbox.metacapi.events() == []
    return error


def test_protocols_test_vectors_are_what_the_hash_helper_makes() -> None:
    assert hashlib.sha256(b"john_smith@gmail.com").hexdigest() == EMAIL_HASH
    assert hashlib.sha256(b"16505551212").hexdigest() == PHONE_HASH


async def test_valid_event_with_test_vector_hashes_is_received(capi: CapiEnv) -> None:
    event = capi.with_user_data(em=EMAIL_HASH, ph=[PHONE_HASH])
    response = await capi.post([event])
    assert response.status_code == 200
    body = response.json()
    assert (body["events_received"], body["messages"]) == (1, [])
    assert body["fbtrace_id"] == response.headers["x-fb-trace-id"]
    [stored] = capi.sandbox.metacapi.events()
    assert (stored.event_name, stored.event_id, stored.duplicate) == ("Purchase", "order-1", False)
    assert stored.event["user_data"]["em"] == EMAIL_HASH


async def test_plain_email_is_rejected_naming_em(capi: CapiEnv) -> None:
    response = await capi.post([capi.with_user_data(em="john_smith@gmail.com")])
    error = assert_rejected(capi, response, "user_data.em", "SHA-256")
    assert error["error_user_title"] == "Unhashed Customer Information"


@pytest.mark.parametrize("field", ["ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge"])
async def test_other_plain_pii_is_rejected_naming_the_field(capi: CapiEnv, field: str) -> None:
    response = await capi.post([capi.with_user_data(**{field: [EMAIL_HASH, "plain"]})])
    assert_rejected(capi, response, f"user_data.{field} ")


async def test_uppercase_hex_is_not_a_valid_hash(capi: CapiEnv) -> None:
    response = await capi.post([capi.with_user_data(em=EMAIL_HASH.upper())])
    assert_rejected(capi, response, "user_data.em")


async def test_external_id_may_be_plain_or_hashed(capi: CapiEnv) -> None:
    plain = capi.with_user_data(external_id="crm-user-17")
    hashed = capi.with_user_data(external_id=[EMAIL_HASH])
    assert (await capi.post([plain, hashed])).json()["events_received"] == 2


@pytest.mark.parametrize(
    "field", ["client_ip_address", "client_user_agent", "fbc", "fbp", "ctwa_clid"]
)
async def test_hashed_plain_fields_are_rejected(capi: CapiEnv, field: str) -> None:
    response = await capi.post([capi.with_user_data(**{field: EMAIL_HASH})])
    error = assert_rejected(capi, response, f"user_data.{field} must not be hashed")
    assert error["error_user_title"] == "Hashed Value Not Allowed"


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"client_ip_address": "300.1.2.3"}, "client_ip_address must be an IPv4 or IPv6"),
        ({"fbp": "fb.1.abc.def"}, "user_data.fbp must look like"),
        ({"fbc": "IwAR2F4-dbP0l7Mn1IawQQ"}, "user_data.fbc must look like"),
        ({"lead_id": "lead-abc"}, "user_data.lead_id"),
    ],
)
async def test_plain_fields_must_be_well_formed(
    capi: CapiEnv, fields: dict[str, Any], needle: str
) -> None:
    assert_rejected(capi, await capi.post([capi.with_user_data(**fields)]), needle)


async def test_well_formed_plain_fields_pass(capi: CapiEnv) -> None:
    event = capi.with_user_data(
        client_ip_address="2001:db8::1",
        fbc="fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk",
        fbp="fb.1.1596403881668.1116446470",
        lead_id=123456789012345,
    )
    assert (await capi.post([event])).status_code == 200


@pytest.mark.parametrize("field", ["event_name", "event_time", "action_source", "user_data"])
async def test_required_fields(capi: CapiEnv, field: str) -> None:
    event = capi.event()
    del event[field]
    error = assert_rejected(capi, await capi.post([event]), f"required parameter {field}")
    assert error["error_user_title"] == "Missing Parameter"


async def test_website_event_needs_event_source_url(capi: CapiEnv) -> None:
    event = capi.event()
    del event["event_source_url"]
    assert_rejected(capi, await capi.post([event]), "event_source_url")


async def test_website_event_needs_client_user_agent(capi: CapiEnv) -> None:
    event = capi.with_user_data(client_user_agent=None)
    assert_rejected(capi, await capi.post([event]), "client_user_agent")


async def test_non_website_events_need_neither(capi: CapiEnv) -> None:
    event = capi.with_user_data(client_user_agent=None)
    del event["event_source_url"]
    event["action_source"] = "chat"
    assert (await capi.post([event])).status_code == 200


async def test_unknown_action_source_is_rejected(capi: CapiEnv) -> None:
    assert_rejected(capi, await capi.post([capi.event(action_source="web")]), "'web'")


async def test_user_data_needs_customer_information(capi: CapiEnv) -> None:
    event = capi.event(action_source="system_generated", user_data={"unknown_key": "x"})
    del event["event_source_url"]
    assert_rejected(capi, await capi.post([event]), "no customer information")


async def test_one_stale_event_rejects_the_whole_batch(capi: CapiEnv) -> None:
    week = 7 * 86_400
    fresh = capi.event(event_id="a")
    edge = capi.event(event_id="b", event_time=capi.now() - week)
    stale = capi.event(event_id="c", event_time=capi.now() - week - 1)
    error = assert_rejected(capi, await capi.post([fresh, edge, stale]), "data[2].event_time")
    assert (error["error_subcode"], error["error_user_title"]) == (
        2804003,
        "Event Timestamp Too Old",
    )
    assert (await capi.post([fresh, edge])).json()["events_received"] == 2


async def test_events_from_the_future_are_rejected(capi: CapiEnv) -> None:
    millis = capi.event(event_time=capi.now() * 1000)
    assert_rejected(capi, await capi.post([millis]), "in the future")
    slight = capi.event(event_time=capi.now() + 60)
    assert (await capi.post([slight])).status_code == 200


async def test_one_invalid_event_rejects_the_batch(capi: CapiEnv) -> None:
    events = [capi.event(event_id=str(i)) for i in range(5)]
    events[3]["user_data"]["em"] = "plain@example.com"
    assert_rejected(capi, await capi.post(events), "data[3].user_data.em")


async def test_1000_events_pass_and_1001_are_rejected(capi: CapiEnv) -> None:
    events = [capi.event(event_id=f"e{i}") for i in range(1001)]
    error = assert_rejected(capi, await capi.post(events), "at most 1000 events", "1001")
    assert error["error_user_title"] == "Too Many Events"
    accepted = await capi.post(events[:1000])
    assert accepted.json()["events_received"] == 1000
    assert capi.sandbox.metacapi.counts().received == 1000


async def test_data_is_required_and_must_be_a_list(capi: CapiEnv) -> None:
    missing = await capi.http.post(
        "/v25.0/1234567890123/events", params={"access_token": "EAAGtestToken123"}, json={}
    )
    assert graph_error(missing)["message"] == "(#100) The parameter data is required"
    not_list = await capi.http.post(
        "/v25.0/1234567890123/events",
        params={"access_token": "EAAGtestToken123"},
        json={"data": {"event_name": "x"}},
    )
    assert "array" in graph_error(not_list)["error_user_msg"]


def _business_messaging(capi: CapiEnv, **fields: Any) -> dict[str, Any]:
    event = capi.event(action_source="business_messaging", messaging_channel="whatsapp")
    event.pop("event_source_url")
    event["user_data"]["ctwa_clid"] = "ARAkLkA8rmlFeiCktEJQ"
    for name, value in fields.items():
        if value is None:
            event.pop(name, None)
            event["user_data"].pop(name, None)
        else:
            event[name] = value
    return event


async def test_a_click_to_whatsapp_conversion_is_received(capi: CapiEnv) -> None:
    response = await capi.post([_business_messaging(capi)])
    assert response.status_code == 200, response.text
    [stored] = capi.sandbox.metacapi.events()
    assert stored.event["user_data"]["ctwa_clid"] == "ARAkLkA8rmlFeiCktEJQ"


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"messaging_channel": None}, "messaging_channel"),
        ({"messaging_channel": "telegram"}, "messaging_channel"),
        ({"ctwa_clid": None}, "user_data.ctwa_clid"),
    ],
)
async def test_business_messaging_needs_its_channel_and_click(
    capi: CapiEnv, fields: dict[str, Any], needle: str
) -> None:
    response = await capi.post([_business_messaging(capi, **fields)])
    assert_rejected(capi, response, needle)
