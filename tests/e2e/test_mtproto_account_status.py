"""The account status of an MTProto session reaches analytics and the CRM: the gateway (the
real Telethon adapter against the sandbox's wire-level MTProto fake) announces a banned
account as ``mtproto.account_status_changed``; analytics' ``/v1/mtproto`` shows it per
session, the CRM's ``/v1/user-accounts`` lists it for the session's workspace only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from switchboard.analytics.app import create_app as analytics_app
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.crm.app import create_app as crm_app
from switchboard.crm.settings import CrmSettings
from switchboard.mtproto.app import create_app as mtproto_app
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox
from switchboard.sandbox.testing import serve

pytestmark = [pytest.mark.e2e]

KEY = "st:" + Keyring.generate_key()
DEMO = "status-demo-key-1"
AUTH = {"Authorization": f"Bearer {DEMO}"}
OTHER = "status-other-key-2"


async def test_a_banned_account_shows_in_analytics_and_the_crm(
    nats_url: str, postgres_url: str
) -> None:
    box = Sandbox()
    seller, _ = box.mtproto.add_user("15550404040")
    issued = box.mtproto_wire.issue_session(seller)
    bus = await Bus.connect(nats_url, name="status-setup")
    await bus.provision()
    await bus.close()
    async with serve(box.app()) as sandbox:
        gateway = MtprotoSettings(
            nats_url=nats_url, database_url=postgres_url, encryption_keys=KEY,
            api_keys=f"{DEMO}=demo", adapter="telethon", sandbox_url=sandbox,
            api_id=12345, api_hash="0123456789abcdef0123456789abcdef", lease_ttl_s=3.0,
            tick_s=0.25, reconnect_initial_s=0.1, reconnect_max_s=1.0, http_port=0,
        )  # fmt: skip
        analytics = AnalyticsSettings(
            nats_url=nats_url, database_url=postgres_url, encryption_keys=KEY,
            api_keys=f"{DEMO}=demo", http_port=0,
        )  # fmt: skip
        crm = CrmSettings(
            nats_url=nats_url, database_url=postgres_url, encryption_keys=KEY,
            api_keys=f"{DEMO}=demo,{OTHER}=other", http_port=0,
        )  # fmt: skip
        async with (
            serve_app(mtproto_app(gateway)) as gw,
            serve_app(analytics_app(analytics)) as an,
            serve_app(crm_app(crm)) as cr,
            httpx.AsyncClient(headers=AUTH, timeout=30) as http,
        ):
            r = await http.put(
                f"{gw}/v1/sessions/seller",
                json={"session": issued["session"], "api_id": 12345,
                      "api_hash": "0123456789abcdef0123456789abcdef"},
            )  # fmt: skip
            assert r.status_code == 201, r.text

            async def status() -> Any:
                now = datetime.now(UTC)
                window = {
                    "from": (now - timedelta(hours=1)).isoformat(),
                    "to": (now + timedelta(minutes=5)).isoformat(),
                }
                r = await http.get(f"{an}/v1/mtproto", params=window)
                assert r.status_code == 200, r.text
                rows = [s for s in r.json()["sessions"] if s["session"] == "seller"]
                return rows[0]["account_status"] if rows else None

            async def in_crm(key: str = DEMO) -> list[Any]:
                r = await http.get(
                    f"{cr}/v1/user-accounts", headers={"Authorization": f"Bearer {key}"}
                )
                assert r.status_code == 200, r.text
                return [a for a in r.json()["items"] if a["session_id"] == "seller"]

            async def active() -> bool:
                return await status() == "active"

            async def crm_active() -> bool:
                return [a["status"] for a in await in_crm()] == ["active"]

            await eventually(active, timeout=30, message="analytics shows the account active")
            await eventually(crm_active, timeout=30, message="the CRM shows the account active")
            assert await in_crm(OTHER) == []  # another workspace does not see the session
            since_active = datetime.fromisoformat((await in_crm())[0]["since"])
            box.mtproto.ban(seller)
            box.mtproto_wire.drop_all()  # the reconnect meets USER_DEACTIVATED_BAN

            async def banned() -> bool:
                return await status() == "banned"

            await eventually(banned, timeout=30, message="analytics shows the account banned")

            async def crm_banned() -> Any:
                rows = await in_crm()
                return rows[0] if rows and rows[0]["status"] == "banned" else None

            row = await eventually(crm_banned, timeout=30, message="the CRM shows it banned")
            assert row["error_code"] == "USER_DEACTIVATED_BAN"
            assert row["reason"]
            assert datetime.fromisoformat(row["since"]) >= since_active
            assert await in_crm(OTHER) == []
