"""WhatsApp and Viber in the combined app: prefixes, demo accounts, JSON config, control."""

from __future__ import annotations

import httpx

from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve
from switchboard.sandbox.viber import DEMO_VIBER_TOKEN
from switchboard.sandbox.whatsapp import DEMO_PHONE_NUMBER_ID, DEMO_WA_TOKEN

TEMPLATE = {"name": "hello_world", "language": {"code": "en_US"}}


async def test_combined_app_mounts_whatsapp_and_viber_with_demo_accounts() -> None:
    box = Sandbox(SandboxConfig(demo=True))
    try:
        async with serve(box.app()) as url, httpx.AsyncClient(base_url=url) as http:
            sent = await http.post(
                f"/whatsapp/v21.0/{DEMO_PHONE_NUMBER_ID}/messages",
                json={"messaging_product": "whatsapp", "to": "15550001111", "type": "template"}
                | {"template": TEMPLATE},
                headers={"Authorization": f"Bearer {DEMO_WA_TOKEN}"},
            )
            assert sent.status_code == 200, sent.text
            info = await http.post(
                "/viber/pa/get_account_info", headers={"X-Viber-Auth-Token": DEMO_VIBER_TOKEN}
            )
            assert info.json()["uri"] == "switchboard_demo"
            health = (await http.get("/_sandbox/health")).json()
            assert {"whatsapp", "viber"} <= set(health["providers"])
            numbers = (await http.get("/_sandbox/whatsapp/numbers")).json()["numbers"]
            assert [n["phone_number_id"] for n in numbers] == [DEMO_PHONE_NUMBER_ID]
            bots = (await http.get("/_sandbox/viber/bots")).json()["bots"]
            assert [b["uri"] for b in bots] == ["switchboard_demo"]
            assert (await http.post("/_sandbox/reset")).json() == {"reset": True}
            assert box.whatsapp.sent_messages(DEMO_PHONE_NUMBER_ID) == []  # demo is back, empty
        assert box.recorder.requests(provider="whatsapp") == []
    finally:
        await box.aclose()


def test_json_config_reaches_both_providers() -> None:
    config = SandboxConfig.from_dict(
        {
            "whatsapp": {
                "limits": {"throughput": {"limit": 20, "window": 1}},
                "statuses": {"read_rate": 0.5},
                "window_errors": "webhook",
                "duplicate_rate": 0.1,
            },
            "viber": {"receivers": "strict", "limits": {"unreplied": None}},
        }
    )
    assert config.whatsapp.limits.to_json()["throughput"]["limit"] == 20
    assert config.whatsapp.statuses.read_rate == 0.5
    assert (config.whatsapp.window_errors, config.whatsapp.duplicate_rate) == ("webhook", 0.1)
    assert config.viber.receivers == "strict"
    assert config.viber.limits.unreplied is None


async def test_control_api_creates_accounts_and_rejects_bad_settings() -> None:
    box = Sandbox()
    try:
        async with serve(box.app()) as url, httpx.AsyncClient(base_url=url) as http:
            number = await http.post(
                "/_sandbox/whatsapp/numbers",
                json={"phone_number_id": "123456789012345", "token": "t", "app_secret": "s"},
            )
            assert number.status_code == 201
            user = await http.post(
                "/_sandbox/whatsapp/numbers/123456789012345/users",
                json={"wa_id": "15551230000", "name": "Ann", "last_inbound_at": 1_700_000_000},
            )
            assert user.json()["name"] == "Ann"
            bad = await http.put("/_sandbox/whatsapp/settings", json={"window_errors": "never"})
            assert bad.status_code == 400
            bot = await http.post(
                "/_sandbox/viber/bots",
                json={"token": "abc-def", "name": "My Shop", "uri": "myshop"},
            )
            assert bot.status_code == 201
            added = await http.post(
                "/_sandbox/viber/bots/myshop/users", json={"id": "u1==", "subscribed": False}
            )
            assert added.json()["subscribed"] is False
            settings = await http.put("/_sandbox/viber/settings", json={"unsubscribed_status": 5})
            assert settings.json()["unsubscribed_status"] == 5
            missing = await http.get("/_sandbox/viber/bots/nobody")
            assert missing.status_code == 404
    finally:
        await box.aclose()
