"""Credential checks before saving, against the sandbox providers: each provider's cheap call
proves (or refutes) the credentials and every problem names its field; through the admin
API, `check` saves nothing and `add` refuses a wrong account with a 422 and saves nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests.support.ingest import IngestEnv, ingest_behind_sandbox
from tests.support.stack import service_env, stored_account

from switchboard.events.catalog.common import Channel
from switchboard.ingest.app import create_app
from switchboard.ingest.cli import main as cli_main
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.accounts import Account
from switchboard.runtime.provider_checks import CheckReport, Endpoints, check_account
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

HEX_SECRET = "0123456789abcdef0123456789abcdef"
BASE = "http://sandbox"


@pytest.fixture
def box() -> Sandbox:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot("123456:good-token", "shop_bot", "Shop")
    box.whatsapp.add_number("109000000000001", "wa-token", app_secret=HEX_SECRET)
    box.whatsapp.add_number("109000000000002", "other-token", app_secret=HEX_SECRET)
    box.viber.add_bot("viber-good-token", "Shop")
    box.sendpulse.add_account("sp-id", "sp-secret")
    box.metacapi.add_pixel("555000", "EAAGoodToken")
    return box


@pytest.fixture
async def http(box: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=box.app())) as client:
        yield client


def _account(channel: Channel, secrets: dict[str, str], **settings: Any) -> Account:
    prefix = {
        Channel.TELEGRAM: "/telegram",
        Channel.WHATSAPP: "/whatsapp",
        Channel.VIBER: "/viber",
    }.get(channel, "/graph" if settings.get("provider") == "metacapi" else "/sendpulse")
    return Account(
        channel=channel,
        id=str(settings.pop("id", "acc1")),
        workspace_id="demo",
        secrets=secrets,
        settings={"api_base_url": BASE + prefix, **settings},
    )


async def _check(http: httpx.AsyncClient, account: Account) -> CheckReport:
    return await check_account(http, Endpoints(), account)


def _paths(report: CheckReport) -> list[str]:
    return [p["path"] for p in report.problems]


async def test_telegram_token_is_checked_with_getme(http: httpx.AsyncClient) -> None:
    good = await _check(http, _account(Channel.TELEGRAM, {"token": "123456:good-token"}))
    assert good.ok, good.problems
    assert good.facts["username"] == "shop_bot"
    wrong = await _check(http, _account(Channel.TELEGRAM, {"token": "123456:wrong-token"}))
    assert _paths(wrong) == ["secrets.token"]
    assert "Telegram refused" in wrong.problems[0]["message"]
    malformed = await _check(http, _account(Channel.TELEGRAM, {"token": "no colon"}))
    assert _paths(malformed) == ["secrets.token"]
    missing = await _check(http, _account(Channel.TELEGRAM, {}))
    assert missing.problems == [{"path": "secrets.token", "message": "required"}]


async def test_whatsapp_number_must_belong_to_the_token(http: httpx.AsyncClient) -> None:
    def wa(token: str, number: str, secret: str = HEX_SECRET) -> Account:
        secrets = {"app_secret": secret, "access_token": token}
        return _account(Channel.WHATSAPP, secrets, phone_number_id=number)

    good = await _check(http, wa("wa-token", "109000000000001"))
    assert good.ok, good.problems
    assert good.facts["display_phone_number"]
    assert _paths(await _check(http, wa("other-token", "109000000000001"))) == [
        "settings.phone_number_id"
    ]
    assert _paths(await _check(http, wa("nobody's-token", "109000000000001"))) == [
        "secrets.access_token"
    ]
    assert _paths(await _check(http, wa("wa-token", "109000000000001", "app-secret"))) == [
        "secrets.app_secret"
    ]
    webhooks_only = await _check(http, _account(Channel.WHATSAPP, {"app_secret": HEX_SECRET}))
    assert webhooks_only.ok
    assert webhooks_only.notes


async def test_viber_token_is_checked_with_account_info(http: httpx.AsyncClient) -> None:
    good = await _check(http, _account(Channel.VIBER, {"token": "viber-good-token"}))
    assert good.ok, good.problems
    assert good.facts["name"] == "Shop"
    assert _paths(await _check(http, _account(Channel.VIBER, {"token": "nope"}))) == [
        "secrets.token"
    ]


async def test_sendpulse_credentials_get_a_token(http: httpx.AsyncClient) -> None:
    def sp(secret: str) -> Account:
        secrets = {"client_id": "sp-id", "client_secret": secret}
        return _account(Channel.GENERIC, secrets, provider="sendpulse")

    good = await _check(http, sp("sp-secret"))
    assert good.ok, good.problems
    assert good.facts["token_expires_in_s"]
    assert _paths(await _check(http, sp("wrong"))) == ["secrets.client_secret"]


async def test_capi_sends_only_a_test_event(http: httpx.AsyncClient, box: Sandbox) -> None:
    def capi(token: str, **settings: Any) -> Account:
        return _account(
            Channel.GENERIC, {"access_token": token}, provider="metacapi", id="555000", **settings
        )

    untested = await _check(http, capi("EAAGoodToken"))
    assert untested.ok
    assert "test_event_code" in untested.notes[0]
    assert box.metacapi.state.test_events == []  # nothing sent without a test code
    good = await _check(http, capi("EAAGoodToken", test_event_code="TEST123"))
    assert good.ok, good.problems
    assert [e.pixel_id for e in box.metacapi.state.test_events] == ["555000"]
    assert box.metacapi.state.events == []  # never a real (counted) event
    bad = await _check(http, capi("EAAWrong", test_event_code="TEST123"))
    assert _paths(bad) == ["secrets.access_token"]


async def test_signing_secret_shape_and_unknown_providers(http: httpx.AsyncClient) -> None:
    bad = await _check(http, _account(Channel.GENERIC, {"signing_secret": "whsec_%%%"}))
    assert _paths(bad) == ["secrets.signing_secret"]
    generated = await _check(http, _account(Channel.GENERIC, {}))
    assert generated.ok
    unknown = await _check(http, _account(Channel.GENERIC, {}, provider="carrier-pigeon"))
    assert _paths(unknown) == ["settings.provider"]


async def test_an_unreachable_provider_is_not_blamed_on_a_field() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(_refuse)) as http:
        report = await _check(http, _account(Channel.TELEGRAM, {"token": "1:abc"}))
    assert _paths(report) == ["provider"]


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


# ----------------------------------------------------------------------------- admin API

ADMIN = "admin-token-123"


@pytest.fixture
async def ingest(
    nats_url: str, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, str]]:
    async with serve(box.app()) as sandbox:
        env = service_env(
            nats_url,
            SWITCHBOARD_ADMIN_TOKEN=ADMIN,
            SWITCHBOARD_INGEST_PUBLIC_URL="http://hooks.invalid",
            SWITCHBOARD_INGEST_TELEGRAM_API_URL=f"{sandbox}/telegram",
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        async with serve_app(create_app(load_settings(IngestSettings))) as url:
            yield url, sandbox


async def test_check_and_add_over_the_admin_api(ingest: tuple[str, str], nats_url: str) -> None:
    url, _ = ingest
    auth = {"Authorization": f"Bearer {ADMIN}"}
    wrong = {
        "channel": "telegram",
        "id": "shop",
        "workspace_id": "demo",
        "secrets": {"token": "123456:wrong-token"},
    }
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=10) as http:
        r = await http.post("/admin/accounts/check", json=wrong)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["path"] for e in r.json()["errors"]] == ["secrets.token"]
        r = await http.post("/admin/accounts", json=wrong)
        assert r.status_code == 422, r.text
        assert [e["path"] for e in r.json()["errors"]] == ["secrets.token"]
        assert await stored_account(nats_url, Channel.TELEGRAM, "shop") is None

        good = {**wrong, "secrets": {"token": "123456:good-token"}}
        r = await http.post("/admin/accounts/check", json=good)
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True
        assert r.json()["facts"]["username"] == "shop_bot"
        assert (
            await stored_account(nats_url, Channel.TELEGRAM, "shop") is None
        )  # check saves nothing
        r = await http.post("/admin/accounts", json=good)
        assert r.status_code == 201, r.text
        assert await stored_account(nats_url, Channel.TELEGRAM, "shop") is not None
        # The same bot again, for another workspace: its webhook would move to the new
        # account, and every update of the bot with it, into the other workspace.
        again = {**good, "id": "shop2", "workspace_id": "other"}
        r = await http.post("/admin/accounts", json=again)
        assert r.status_code == 409, r.text
        assert (r.json()["code"], r.json()["field"]) == ("taken", "secrets.token")
        assert "demo/shop" in r.json()["detail"]
        assert await stored_account(nats_url, Channel.TELEGRAM, "shop2") is None

        async def probed() -> dict[str, Any] | None:
            report = (await http.get("/health/integrations")).json()
            entry = report["integrations"].get("telegram/shop")
            return entry if entry and entry["probe"]["ok"] is not None else None

        entry = await eventually(probed, timeout=30, message="ingest probed the new bot")
        assert entry["probe"]["ok"] is True
        assert entry["probe"]["facts"]["username"] == "shop_bot"


async def test_adds_at_once_keep_one_account_whose_secret_the_provider_has(
    ingest: tuple[str, str], nats_url: str, box: Sandbox
) -> None:
    """Five adds of one account at once (an operator's retries): one is stored, the others
    are told it exists, and the webhook secret stored is the one Telegram sends. Before,
    each overwrote the last and registered its own secret: updates could be refused as
    forged. Then the same bot as two accounts of two workspaces at once: never both."""
    url, _ = ingest
    auth = {"Authorization": f"Bearer {ADMIN}"}
    good = {"channel": "telegram", "id": "shop", "workspace_id": "demo",
            "secrets": {"token": "123456:good-token"}}  # fmt: skip
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http:
        answers = await asyncio.gather(*(http.post("/admin/accounts", json=good) for _ in range(5)))
        assert sorted(r.status_code for r in answers) == [201, 409, 409, 409, 409], answers
        stored = await stored_account(nats_url, Channel.TELEGRAM, "shop")
        assert stored is not None
        bot = box.telegram.state.find_bot("shop_bot")
        assert bot is not None
        assert bot.webhook.secret_token == stored.secrets["webhook_secret"]

        # Rotations at once: each rotates what the one before stored, and Telegram ends
        # with the secret that is stored, whatever order the registrations landed in.
        rotations = await asyncio.gather(
            *(http.post("/admin/accounts/telegram/shop/rotate") for _ in range(5))
        )
        assert [r.status_code for r in rotations] == [200] * 5, rotations
        stored = await stored_account(nats_url, Channel.TELEGRAM, "shop")
        assert stored is not None
        assert bot.webhook.secret_token == stored.secrets["webhook_secret"]
        await http.delete("/admin/accounts/telegram/shop")

        two = [{**good, "id": f"shop{i}", "workspace_id": f"w{i}"} for i in range(2)]
        answers = await asyncio.gather(*(http.post("/admin/accounts", json=b) for b in two))
        kept = [i for i in range(2) if await stored_account(nats_url, Channel.TELEGRAM, f"shop{i}")]
        assert len(kept) <= 1, answers
        assert [r.status_code for r in answers].count(201) == len(kept)


async def test_webhooks_are_registered_where_the_account_says_its_api_is(
    nats_url: str, box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check asked the account's ``api_base_url``, and so do setWebhook, a rotation and
    a removal. Before, they went to the default API: on the sandbox (or a local Bot API
    server) an add passed its check and then failed 502 at setWebhook, and nothing was
    added."""
    # Ingest's default Telegram and Viber APIs answer nothing: only the accounts' own
    # ``settings.api_base_url`` reaches a provider.
    nowhere = "http://127.0.0.1:9"
    env = {
        "SWITCHBOARD_INGEST_TELEGRAM_API_URL": nowhere,
        "SWITCHBOARD_INGEST_VIBER_API_URL": nowhere,
    }
    async with ingest_behind_sandbox(box, nats_url, monkeypatch, "telegram", **env) as ingest:
        await _register_where_the_account_says(ingest, nats_url, box)


async def _register_where_the_account_says(ingest: IngestEnv, nats_url: str, box: Sandbox) -> None:
    url, sandbox, hooks = ingest.ingest, ingest.sandbox, ingest.ingest
    auth = {"Authorization": f"Bearer {ADMIN}"}
    telegram = {"channel": "telegram", "id": "shop", "workspace_id": "demo",
                "secrets": {"token": "123456:good-token"},
                "settings": {"api_base_url": f"{sandbox}/telegram"}}  # fmt: skip
    viber = {"channel": "viber", "id": "vb", "workspace_id": "demo",
             "secrets": {"token": "viber-good-token"},
             "settings": {"api_base_url": f"{sandbox}/viber"}}  # fmt: skip
    bot = box.telegram.state.find_bot("shop_bot")
    viber_bot = box.viber.bot("viber-good-token")
    assert bot is not None
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http:
        r = await http.post("/admin/accounts", json=telegram)
        assert r.status_code == 201, r.text
        stored = await stored_account(nats_url, Channel.TELEGRAM, "shop")
        assert stored is not None
        assert bot.webhook.url == f"{hooks}/webhooks/telegram/shop"
        assert bot.webhook.secret_token == stored.secrets["webhook_secret"]

        r = await http.post("/admin/accounts/telegram/shop/rotate")
        assert r.status_code == 200, r.text
        stored = await stored_account(nats_url, Channel.TELEGRAM, "shop")
        assert stored is not None
        assert bot.webhook.secret_token == stored.secrets["webhook_secret"]

        r = await http.delete("/admin/accounts/telegram/shop")
        assert r.status_code == 204, r.text
        assert bot.webhook.url == ""

        r = await http.post("/admin/accounts", json=viber)
        assert r.status_code == 201, r.text
        assert viber_bot.webhook.url == f"{hooks}/webhooks/viber/vb"
        # Viber shows `sender.name` to the user: the bot's name, not the account's id.
        stored = await stored_account(nats_url, Channel.VIBER, "vb")
        assert stored is not None
        assert stored.settings["sender_name"] == "Shop"
        r = await http.delete("/admin/accounts/viber/vb")
        assert r.status_code == 204, r.text
        assert viber_bot.webhook.url == ""


async def test_cli_check_prints_what_is_wrong(
    ingest: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = ingest
    monkeypatch.setenv("SWITCHBOARD_TELEGRAM_TOKEN", "123456:wrong-token")
    argv = ["--url", url, "--admin-token", ADMIN, "accounts", "check", "telegram", "shop"]
    code = await _in_thread(cli_main, argv)
    assert code == 1
    err = capsys.readouterr().err
    assert "422 check_failed" in err
    assert "secrets.token" in err


async def _in_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args)


async def test_a_registered_webhook_is_checked_where_it_points_and_for_errors(
    http: httpx.AsyncClient, box: Sandbox
) -> None:
    """With the URL ingest registered, the probe also asks Telegram (getWebhookInfo) and
    Viber (get_account_info) where they deliver, and whether Telegram failed lately."""
    expected = "https://hooks.example/webhooks/telegram/acc1"
    bot = _account(Channel.TELEGRAM, {"token": "123456:good-token"})
    box.telegram.set_webhook("123456:good-token", "https://elsewhere.example/hook")
    moved = await check_account(http, Endpoints(), bot, expected)
    assert _paths(moved) == ["webhook"]
    assert "elsewhere.example" in moved.problems[0]["message"]

    box.telegram.set_webhook("123456:good-token", expected)
    good = await check_account(http, Endpoints(), bot, expected)
    assert good.ok, good.problems
    assert good.facts["webhook_url"] == expected

    updates = box.telegram.bot("123456:good-token").updates
    updates.last_error_date = int(time.time()) - 30
    updates.last_error_message = "Connection refused"
    failing = await check_account(http, Endpoints(), bot, expected)
    assert failing.problems == [
        {"path": "webhook", "message": "Telegram could not deliver: Connection refused"}
    ]
    updates.last_error_date = int(time.time()) - 3600  # an old error is history, not news
    assert (await check_account(http, Endpoints(), bot, expected)).ok

    viber = _account(Channel.VIBER, {"token": "viber-good-token"})
    unset = await check_account(
        http, Endpoints(), viber, "https://hooks.example/webhooks/viber/acc1"
    )
    assert _paths(unset) == ["webhook"]


async def test_a_failing_webhook_info_is_the_providers_problem_not_the_webhooks() -> None:
    """Telegram answering getWebhookInfo with a 5xx says nothing about where it delivers:
    the probe reports the provider, not a webhook pointing nowhere."""

    def telegram(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/getMe"):
            return httpx.Response(200, json={"ok": True, "result": {"id": 123456}})
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    expected = "https://hooks.example/webhooks/telegram/acc1"
    bot = _account(Channel.TELEGRAM, {"token": "123456:good-token"})
    async with httpx.AsyncClient(transport=httpx.MockTransport(telegram)) as http:
        report = await check_account(http, Endpoints(), bot, expected)
    assert report.problems == [
        {"path": "provider", "message": "Telegram getWebhookInfo answered 502"}
    ]
