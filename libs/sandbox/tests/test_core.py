"""The shared sandbox core: settings updates, rate-limit sets, traffic requests, the route
guard, and the shared messaging control routes as every provider serves them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.faults import FaultSpec
from switchboard.sandbox.httpjson import ControlError
from switchboard.sandbox.messaging import MessagingProvider
from switchboard.sandbox.mtproto.config import MtprotoConfig
from switchboard.sandbox.ratelimit import Penalty, SlidingWindow, TokenBucket
from switchboard.sandbox.routes import route_table
from switchboard.sandbox.telegram.config import TelegramConfig, TelegramLimits
from switchboard.sandbox.telegram.provider import DEMO_TOKEN as TG_DEMO_TOKEN
from switchboard.sandbox.telegram.provider import DEMO_USERNAME as TG_DEMO_USERNAME
from switchboard.sandbox.traffic import TrafficRequest, check_mix
from switchboard.sandbox.viber.config import CallbackSettings, ViberConfig
from switchboard.sandbox.viber.provider import DEMO_VIBER_TOKEN, DEMO_VIBER_URI
from switchboard.sandbox.webhooks import Wakeup
from switchboard.sandbox.whatsapp.config import StatusSettings, WhatsAppConfig
from switchboard.sandbox.whatsapp.provider import DEMO_PHONE_NUMBER_ID as WA_DEMO_ID
from switchboard.sandbox.whatsapp.provider import DEMO_WA_TOKEN as WA_DEMO_TOKEN

from .conftest import ClockedEnv, TelegramEnv


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FaultSpec(hang_rate=1.5), "hang_rate must be between 0 and 1"),
        (lambda: FaultSpec(hang_seconds=-1), "hang_seconds cannot be negative"),
        (lambda: CallbackSettings(failed_rate=-0.1), "failed_rate must be between 0 and 1"),
        (lambda: StatusSettings(delay=-1), "delay cannot be negative"),
        (lambda: WhatsAppConfig(duplicate_rate=2), "duplicate_rate must be between 0 and 1"),
        (lambda: MtprotoConfig(flood_grace=-1), "flood_grace cannot be negative"),
    ],
)
def test_settings_out_of_range_name_the_field(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        make()


def test_rule_limits_round_trip_rules_and_penalty() -> None:
    limits = TelegramLimits()
    limits.update({"bot": {"limit": 5, "window": 2}, "group": None, "penalty": {"step": 2}})
    assert limits.bot == SlidingWindow(limit=5, window=2.0)
    assert limits.group is None
    assert limits.penalty == Penalty(step=2.0)
    assert limits.to_json()["private_chat"] == TokenBucket(rate=1.0, burst=3).to_json()
    assert limits.to_json()["group"] is None
    with pytest.raises(ValueError, match=r"unknown limit names: \['chat'\]"):
        limits.update({"chat": {"limit": 1}})


def test_settings_update_names_unknown_settings_with_the_provider() -> None:
    with pytest.raises(ValueError, match=r"unknown viber settings: \['nope'\]"):
        ViberConfig().update({"nope": 1})
    with pytest.raises(ValueError, match=r"unknown telegram settings: \['nope'\]"):
        TelegramConfig.from_dict({"nope": 1})


def test_settings_update_is_all_or_nothing_for_plain_settings() -> None:
    config = WhatsAppConfig()
    with pytest.raises(ValueError, match="throttle_status"):
        config.update({"window_seconds": 60.0, "throttle_status": 418})
    assert config.window_seconds == 24 * 3600.0
    assert config.throttle_status == 429


def test_settings_update_nested_objects() -> None:
    config = TelegramConfig.from_dict(
        {"strict_chats": True, "webhook_retry": {"initial": 0.1}, "limits": {"bot": None}}
    )
    assert config.strict_chats is True
    assert config.webhook_retry.initial == 0.1
    assert config.limits.bot is None
    assert config.to_json()["webhook_retry"]["initial"] == 0.1
    with pytest.raises(ValueError, match="webhook_retry must be a JSON object"):
        config.update({"webhook_retry": 5})
    with pytest.raises(TypeError):
        config.update({"webhook_retry": {"nope": 1}})


def test_traffic_request_parses_and_checks_the_body() -> None:
    request = TrafficRequest.from_json({"duration": "2m", "rate": "5", "mix": {"text": 1}})
    assert (request.count, request.duration, request.rate) == (None, 120.0, 5.0)
    assert (request.seed, request.users) == (0, 50)
    with pytest.raises(ControlError, match="give count or duration"):
        TrafficRequest.from_json({"rate": 5})
    with pytest.raises(ControlError, match="mix must be a JSON object"):
        TrafficRequest.from_json({"count": 1, "mix": ["text"]})


def test_check_mix_drops_zero_weights_and_names_unknown_kinds() -> None:
    assert check_mix({"a": 1, "b": 0}, {"a": 1}, ("a", "b"), "test kinds") == {"a": 1.0}
    with pytest.raises(ValueError, match=r"unknown test kinds \['c'\]; known: a, b"):
        check_mix({"c": 1}, {"a": 1}, ("a", "b"), "test kinds")
    with pytest.raises(ValueError, match="positive sum"):
        check_mix({"a": 0}, {"a": 1}, ("a", "b"), "test kinds")


async def test_wakeup_wakes_a_waiter_and_a_wait_without_set_ends_at_its_timeout() -> None:
    wakeup = Wakeup()
    wakeup.set()  # nobody waits: nothing is remembered
    await wakeup.wait(0)
    waiter = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)  # let the waiter start waiting
    assert not waiter.done()
    wakeup.set()
    await waiter


def test_a_forgotten_wakeup_works_in_the_next_event_loop() -> None:
    wakeup = Wakeup()

    async def wake_one() -> None:
        waiter = asyncio.create_task(wakeup.wait())
        await asyncio.sleep(0)
        wakeup.set()
        await waiter

    asyncio.run(wake_one())
    with pytest.raises(RuntimeError, match="different event loop"):
        asyncio.run(wake_one())
    wakeup.forget()
    asyncio.run(wake_one())


class _TeapotError(Exception):
    pass


async def test_route_guard_answers_control_errors_bad_values_and_translated_ones() -> None:
    async def control(request: Request) -> Response:
        raise ControlError("gone", 410)

    async def bad_value(request: Request) -> Response:
        raise ValueError("count must be positive")

    async def teapot(request: Request) -> Response:
        raise _TeapotError

    async def crash(request: Request) -> Response:
        raise RuntimeError("bug")

    def translate(exc: Exception) -> Response | None:
        if isinstance(exc, _TeapotError):
            return JSONResponse({"tea": True}, status_code=418)
        return None

    table = [
        ("/control", control, ["GET"]),
        ("/bad", bad_value, ["GET"]),
        ("/teapot", teapot, ["GET"]),
        ("/crash", crash, ["GET"]),
    ]
    app = Starlette(routes=route_table(table, translate))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        gone = await http.get("/control")
        assert (gone.status_code, gone.json()) == (410, {"error": "gone"})
        bad = await http.get("/bad")
        assert (bad.status_code, bad.json()) == (400, {"error": "count must be positive"})
        tea = await http.get("/teapot")
        assert (tea.status_code, tea.json()) == (418, {"tea": True})
        assert (await http.get("/crash")).status_code == 500


async def test_telegram_settings_refuse_unknown_names(tg: TelegramEnv) -> None:
    bad = await tg.http.put("/_sandbox/telegram/settings", json={"strict": True})
    assert bad.status_code == 400
    assert bad.json() == {"error": "unknown telegram settings: ['strict']"}
    assert tg.sandbox.telegram.config.strict_chats is False


async def test_limits_changed_through_settings_start_every_key_afresh(
    clocked: ClockedEnv,
) -> None:
    await clocked.http.put("/_sandbox/telegram/limits", json={"bot": {"limit": 1, "window": 60}})
    assert (await clocked.call("sendMessage", chat_id=1, text="a")).status_code == 200
    assert (await clocked.call("sendMessage", chat_id=2, text="b")).status_code == 429
    changed = await clocked.http.put(
        "/_sandbox/telegram/settings", json={"limits": {"bot": {"limit": 2, "window": 60}}}
    )
    assert changed.json()["limits"]["bot"]["limit"] == 2
    assert (await clocked.call("sendMessage", chat_id=3, text="c")).status_code == 200


_DEMO_ACCOUNTS: dict[str, Callable[[Sandbox], object]] = {
    "telegram": lambda box: box.telegram.add_demo_bot(),
    "whatsapp": lambda box: box.whatsapp.add_demo_number(),
    "viber": lambda box: box.viber.add_demo_bot(),
}


@pytest.mark.parametrize("name", list(_DEMO_ACCOUNTS))
async def test_every_messaging_fake_lists_and_removes_its_accounts_in_the_shared_routes(
    name: str,
) -> None:
    box = Sandbox()
    provider: MessagingProvider[Any, Any] = getattr(box, name)
    account = _DEMO_ACCOUNTS[name](box)
    key = provider.account_key(account)
    accounts = f"/_sandbox/{name}/{provider.accounts_key}"
    transport = httpx.ASGITransport(app=box.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        listed = (await http.get(accounts)).json()
        assert listed == {provider.accounts_key: [provider.find(key).summary()]}
        deleted = await http.delete(f"{accounts}/{key}")
        assert (deleted.status_code, deleted.json()) == (200, {"deleted": True})
        assert (await http.get(accounts)).json() == {provider.accounts_key: []}
        again = await http.delete(f"{accounts}/{key}")
        assert again.status_code == 404
        assert key in again.json()["error"]
    await box.aclose()


@pytest.mark.parametrize(
    ("name", "ref", "key"),
    [
        ("telegram", f"@{TG_DEMO_USERNAME}", TG_DEMO_TOKEN.split(":")[0]),
        ("telegram", "555:not-registered", "555"),
        ("whatsapp", "+1 555 010 0001", WA_DEMO_ID),
        ("whatsapp", WA_DEMO_TOKEN, WA_DEMO_ID),
        ("viber", DEMO_VIBER_TOKEN, DEMO_VIBER_URI),
        ("viber", "nobody", "nobody"),
    ],
)
def test_fault_rules_key_accounts_as_records_do(name: str, ref: str, key: str) -> None:
    box = Sandbox(SandboxConfig(demo=True))
    assert box.providers[name].normalize_account(ref) == key


async def test_unknown_account_in_shared_routes_is_a_404(tg: TelegramEnv) -> None:
    generated = await tg.http.get("/_sandbox/telegram/generated", params={"bot": "nobody"})
    assert generated.status_code == 404
    assert "nobody" in generated.json()["error"]
    traffic = await tg.http.post("/_sandbox/telegram/traffic", json={"bot": "nobody", "count": 1})
    assert traffic.status_code == 404
    missing = await tg.http.post("/_sandbox/telegram/traffic", json={"count": 1})
    assert (missing.status_code, missing.json()) == (400, {"error": "bot is required"})


async def test_api_bodies_that_are_not_json_objects_get_each_providers_error() -> None:
    box = Sandbox(SandboxConfig(demo=True))
    transport = httpx.ASGITransport(app=box.app())
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            token = await http.post("/sendpulse/oauth/access_token", content=b"[1]")
            assert token.status_code == 400
            assert "Request body must be a JSON object" in token.text
            events = await http.post(
                "/graph/v25.0/100000000000001/events",
                content=b"{broken",
                headers={"content-type": "application/json"},
            )
            assert events.status_code == 400
            assert "The request body is not valid JSON." in events.text
    finally:
        await box.aclose()
