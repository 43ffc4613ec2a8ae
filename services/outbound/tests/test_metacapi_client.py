"""CapiClient: request shape, batching, local checks and classification (MockTransport),
then acceptance by the sandbox's CAPI fake with SDK-equal hashes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from facebook_business.adobjects.serverside.normalize import Normalize  # type: ignore[import-untyped]

from switchboard.outbound.providers.base import Failure, ProviderError, Scope
from switchboard.outbound.providers.metacapi import CapiClient, CapiEvent, InvalidUserDataError

from .support import CUSTOMER, Env, Mock, assert_error, reply

NOW = 1_750_000_000.0
PIXEL = "1234567890"
TOKEN = "EAAtest-capi-token"


def event(index: int = 0, **extra: Any) -> CapiEvent:
    return CapiEvent(
        event_name="Purchase",
        event_time=int(NOW) - 60,
        action_source="website",
        event_source_url="https://shop.test/checkout",
        event_id=f"order-{index}",
        user_data={
            "em": f"Buyer{index}@Example.com",
            "ph": "+1 (650) 555-1212",
            "client_user_agent": "Mozilla/5.0",
            "client_ip_address": "203.0.113.7",
            "fbp": "fb.1.1558571054389.1098115397",
        },
        custom_data={"currency": "USD", "value": 10.5},
        **extra,
    )


def received(count: int) -> httpx.Response:
    return reply(200, {"events_received": count, "messages": [], "fbtrace_id": f"T{count}"})


def client(http: httpx.AsyncClient, **kwargs: Any) -> CapiClient:
    return CapiClient(http, clock=lambda: NOW, **kwargs)


async def test_request_shape() -> None:
    mock = Mock([received(1)])
    async with mock.client() as http:
        result = await client(http, graph_version="v25.0").send_events(
            PIXEL,
            TOKEN,
            [event(extra={"opt_out": False})],
            test_event_code="TEST123",
            app_secret="s3cret",
        )
    request = mock.requests[0]
    assert (request.method, str(request.url)) == (
        "POST",
        f"https://graph.facebook.com/v25.0/{PIXEL}/events",
    )
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(request.url)
    body = mock.json()
    assert body["test_event_code"] == "TEST123"
    assert len(body["appsecret_proof"]) == 64
    [sent] = body["data"]
    assert sent["event_id"] == "order-0"
    assert sent["opt_out"] is False
    assert sent["custom_data"] == {"currency": "USD", "value": 10.5}
    assert sent["user_data"] == {
        "em": [Normalize.normalize_field("em", "Buyer0@Example.com")],
        "ph": [Normalize.normalize_field("ph", "+1 (650) 555-1212")],
        "client_user_agent": "Mozilla/5.0",
        "client_ip_address": "203.0.113.7",
        "fbp": "fb.1.1558571054389.1098115397",
    }
    assert result.events_received == 1
    assert result.fbtrace_ids == ["T1"]


async def test_batches_of_at_most_a_thousand() -> None:
    mock = Mock(default=lambda r: received(len(json.loads(r.content)["data"])))
    async with mock.client() as http:
        result = await client(http).send_events(PIXEL, TOKEN, [event(i) for i in range(2500)])
    assert [len(mock.json(i)["data"]) for i in range(3)] == [1000, 1000, 500]
    assert result.events_received == 2500
    ids = [e["event_id"] for i in range(3) for e in mock.json(i)["data"]]
    assert ids == [f"order-{i}" for i in range(2500)]


async def test_stale_events_are_skipped_and_bad_values_dropped() -> None:
    stale = CapiEvent("Lead", int(NOW) - 8 * 86400, "system_generated", {"external_id": "u1"})
    raw_mapping = {
        "event_name": "Lead",
        "event_time": int(NOW),
        "action_source": "chat",
        "user_data": {"em": "nope", "external_id": "u2"},
    }
    mock = Mock([received(2)])
    async with mock.client() as http:
        result = await client(http).send_events(PIXEL, TOKEN, [stale, event(1), raw_mapping])
    names = [e["event_name"] for e in mock.json()["data"]]
    assert names == ["Purchase", "Lead"]
    assert mock.json()["data"][1]["user_data"] == {
        "external_id": [Normalize.normalize_field("external_id", "u2")]
    }
    assert [(p.index, p.field) for p in result.skipped] == [(0, "event_time")]
    assert [(p.index, p.field) for p in result.invalid] == [(2, "em")]


async def test_strict_mode_raises_before_sending() -> None:
    mock = Mock()
    async with mock.client() as http:
        with pytest.raises(InvalidUserDataError):
            await client(http, strict=True).send_events(
                PIXEL, TOKEN, [CapiEvent("Lead", int(NOW), "chat", {"ph": "call me"})]
            )
    assert mock.requests == []


def graph_error(status: int, code: int, subcode: int | None = None, **extra: Any) -> httpx.Response:
    error: dict[str, Any] = {
        "message": "Invalid parameter",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "T",
        **extra,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return reply(status, {"error": error})


@pytest.mark.parametrize(
    ("answer", "failure", "code"),
    [
        (
            graph_error(400, 100, 2804003, error_user_msg="Event Timestamp Too Old"),
            Failure.PERMANENT,
            "metacapi_100_2804003",
        ),
        (graph_error(400, 190, 463), Failure.UNAUTHORIZED, "metacapi_190_463"),
        (graph_error(500, 2, is_transient=True), Failure.RETRYABLE, "metacapi_2"),
        (graph_error(400, 1, is_transient=True), Failure.RETRYABLE, "metacapi_1"),
        (httpx.Response(503, text="down"), Failure.RETRYABLE, "metacapi_503"),
        (graph_error(400, 17), Failure.RATE_LIMITED, "metacapi_17"),
        (reply(429, {}, {"Retry-After": "30"}), Failure.RATE_LIMITED, "metacapi_429"),
        (httpx.ReadTimeout("slow"), Failure.RETRYABLE, "metacapi_timeout"),
    ],
)
async def test_classification(answer: Any, failure: Failure, code: str) -> None:
    mock = Mock([answer])
    async with mock.client() as http:
        with pytest.raises(ProviderError) as caught:
            await client(http).send_events(PIXEL, TOKEN, [event()])
    assert_error(caught.value, failure, code)
    assert TOKEN not in str(caught.value)
    if failure is Failure.RATE_LIMITED:
        assert caught.value.scope is Scope.ACCOUNT
        assert caught.value.retry_after in (30.0, 60.0)


async def test_a_failing_later_batch_reports_what_was_accepted() -> None:
    mock = Mock([received(1000), graph_error(502, 2, is_transient=True)])
    async with mock.client() as http:
        with pytest.raises(ProviderError) as caught:
            await client(http).send_events(PIXEL, TOKEN, [event(i) for i in range(1500)])
    assert caught.value.failure is Failure.RETRYABLE
    assert caught.value.raw["events_accepted"] == 1000
    assert caught.value.raw["batch"] == 1


def test_batch_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        CapiClient(httpx.AsyncClient(), batch_size=1001)


# -- against the sandbox ---------------------------------------------------------------


def sandbox_client(env: Env) -> CapiClient:
    return CapiClient(
        env.http, base_url=f"{env.url}/graph", graph_version="v25.0", clock=env.clock.time
    )


def sandbox_event(env: Env, index: int = 0) -> CapiEvent:
    return CapiEvent(
        event_name="Purchase",
        event_time=int(env.clock.time()) - 30,
        action_source="website",
        event_source_url="https://shop.test/checkout",
        event_id=f"order-{index}",
        user_data={
            **CUSTOMER,
            "em": "  John_Smith@Gmail.com ",
            "ph": "+1 (650) 555-1212",
            "external_id": "crm-42",
        },
    )


async def test_sandbox_accepts_sdk_equal_hashes_and_dedups_by_event_id(env: Env) -> None:
    env.box.metacapi.add_pixel(PIXEL, TOKEN)
    capi = sandbox_client(env)
    result = await capi.send_events(PIXEL, TOKEN, [sandbox_event(env, 0), sandbox_event(env, 1)])
    assert result.events_received == 2
    await capi.send_events(PIXEL, TOKEN, [sandbox_event(env, 0)])  # the pixel already sent it
    stored = env.box.metacapi.events(PIXEL)
    assert [(e.event_id, e.duplicate) for e in stored] == [
        ("order-0", False),
        ("order-1", False),
        ("order-0", True),
    ]
    user_data = stored[0].event["user_data"]
    plain = sandbox_event(env).user_data
    for name in ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge"):
        assert user_data[name] == [Normalize.normalize_field(name, plain[name])], name
    assert user_data["em"] == ["62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"]
    for name in ("client_user_agent", "client_ip_address", "fbc", "fbp", "lead_id"):
        assert user_data[name] == plain[name]
    [record] = env.box.recorder.requests(provider="metacapi", ok=True)[:1]
    assert record.path.endswith(f"/v25.0/{PIXEL}/events")

    await capi.send_events(PIXEL, TOKEN, [sandbox_event(env, 9)], test_event_code="TEST42")
    assert [e.event_id for e in env.box.metacapi.test_events(PIXEL, code="TEST42")] == ["order-9"]
    assert env.box.metacapi.counts(PIXEL).received == 3


async def test_sandbox_rejects_plain_pii_and_classifies_failures(env: Env) -> None:
    env.box.metacapi.add_pixel(PIXEL, TOKEN)
    capi = sandbox_client(env)
    plain = {
        "event_name": "Lead",
        "event_time": int(env.clock.time()),
        "action_source": "chat",
        "user_data": {"em": "john_smith@gmail.com"},
    }
    with pytest.raises(ProviderError) as caught:
        await capi.send_batch(PIXEL, TOKEN, [plain])  # bypasses hashing on purpose
    assert_error(caught.value, Failure.PERMANENT, "metacapi_100_2804019")
    assert "data[0].user_data.em" in caught.value.reason
    await capi.send_events(PIXEL, TOKEN, [plain])  # the client hashes it: accepted
    assert env.box.metacapi.counts(PIXEL).received == 1

    env.box.set_fault("metacapi", PIXEL, error_rate=1.0, error_status=503)
    with pytest.raises(ProviderError) as caught:
        await capi.send_events(PIXEL, TOKEN, [plain])
    assert caught.value.failure is Failure.RETRYABLE
    env.box.clear_faults()

    env.box.metacapi.expire_token(TOKEN)
    with pytest.raises(ProviderError) as caught:
        await capi.send_events(PIXEL, TOKEN, [plain])
    assert_error(caught.value, Failure.UNAUTHORIZED, "metacapi_190_463")
