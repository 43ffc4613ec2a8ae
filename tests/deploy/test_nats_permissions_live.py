"""The generated NATS users and permissions, on a real nats-server, with the real services.

The server gets the accounts block of ``deploy/nats/values.yaml`` as the Helm chart would
render it (passwords filled in). The ``nack`` user creates streams, buckets and durable
consumers from the generated NACK manifests, as NACK would. Then ingest and CRM run
in-process with ``PROVISION=false`` and their own users, a webhook goes all the way to the
CRM API and a command travels the bus; outbound sends through a fake Bot API (and fails a
send to an unknown account, which dead-letters); the MTProto gateway logs a Telegram account
in over the bus (erasing the login commands), reads a channel, sends through its per-session
durable and deletes it at logout, against the sandbox's fake Telegram; analytics projects
every stream it reads from its checkpoints, dead-letters a poison event and publishes a
conversion command for a won lead. The server log must show no permission violation, and
the services must not have changed the consumers NACK owns. Finally each user is refused
what it must not do (another service's subjects, stream administration, NACK's consumers).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import sysconfig
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from nats.aio.client import Client as NatsClient
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    ReplayPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from switchboard.analytics.app import create_app as create_analytics
from switchboard.analytics.settings import AnalyticsSettings
from switchboard.crm.app import create_app as create_crm
from switchboard.crm.rebuild import rebuild
from switchboard.crm.settings import CrmSettings
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import (
    ContactCreated,
    ContactErased,
    Identity,
    IdentityClaimed,
    LeadCreated,
    LeadStageChanged,
    UpdateContact,
    first_lead_id,
    identity_key,
)
from switchboard.events.catalog.delivery import DeliveryQueued, DeliverySent
from switchboard.events.catalog.mtproto import SessionConnected, StartLogin, SubmitLoginCode
from switchboard.events.k8s import password_env
from switchboard.flows.app import create_app as create_flows
from switchboard.flows.settings import FlowsSettings
from switchboard.ingest.app import create_app as create_ingest
from switchboard.ingest.settings import IngestSettings
from switchboard.mtproto.app import create_app as create_mtproto
from switchboard.mtproto.runner import send_consumer
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.outbound.app import create_app as create_outbound
from switchboard.outbound.erasure import identity_hash as erased_identity_hash
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.claims import claim_key
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.embedded import free_port, wait_for_port
from switchboard.runtime.keys import KeyStore
from switchboard.runtime.kv import entries
from switchboard.runtime.sealing import seal
from switchboard.runtime.settings import load_settings, parse_keyring
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox
from switchboard.sandbox.testing import serve
from tests.support.conv import T0, received, sent
from tests.support.outbound import text_send
from tests.support.stack import API_KEY, keyring, service_env
from tests.support.telegram import text_update

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "deploy/nats/values.yaml"
JETSTREAM = ROOT / "deploy/k8s/base/jetstream"
SECRET = "s3cret-token"


def _nats_binary() -> str:
    for candidate in (
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ):
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("nats-server not found (switchboard-runtime[embedded])")


def _go_seconds(text: str) -> float:
    unit = {"s": 1, "m": 60, "h": 3600}[text[-1]]
    return float(text[:-1]) * unit


def _passwords() -> dict[str, str]:
    merge = yaml.safe_load(VALUES.read_text())["config"]["merge"]
    users = [u["user"] for acc in merge["accounts"].values() for u in acc["users"]]
    return {user: f"pw-{user}-0123456789" for user in users}


def _server_config(tmp: Path, port: int, passwords: dict[str, str]) -> Path:
    """nats.conf with the values' accounts, as the chart renders them (variables resolved)."""
    text = json.dumps(yaml.safe_load(VALUES.read_text())["config"]["merge"])
    for user, password in passwords.items():
        text = text.replace(f"<< ${password_env(user)} >>", password)
    assert "<<" not in text, "a password placeholder without a user"
    lines = [
        f"listen: 127.0.0.1:{port}",
        "server_name: permissions",
        f'jetstream {{ store_dir: "{tmp / "js"}" }}',
        f'log_file: "{tmp / "nats.log"}"',
    ]
    lines += [f"{key}: {json.dumps(value)}" for key, value in json.loads(text).items()]
    conf = tmp / "nats.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _consumer_config(spec: dict[str, Any]) -> ConsumerConfig:
    """The JetStream config NACK creates from a generated Consumer resource."""
    filters = spec.get("filterSubjects") or None
    return ConsumerConfig(
        durable_name=spec["durableName"],
        description=spec.get("description"),
        ack_policy=AckPolicy(spec["ackPolicy"]),
        ack_wait=_go_seconds(spec["ackWait"]),
        deliver_policy=DeliverPolicy(spec["deliverPolicy"]),
        replay_policy=ReplayPolicy(spec["replayPolicy"]),
        max_deliver=spec["maxDeliver"],
        max_ack_pending=spec["maxAckPending"],
        filter_subject=spec.get("filterSubject"),
        filter_subjects=filters,
    )


def _nack(kind_file: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((JETSTREAM / kind_file).read_text()) if d]


def _nack_consumers() -> list[dict[str, Any]]:
    return _nack("consumers.yaml")


def _stream_config(spec: dict[str, Any]) -> StreamConfig:
    """The stream NACK creates from a generated Stream resource (one replica here)."""
    return StreamConfig(
        name=spec["name"],
        description=spec.get("description"),
        subjects=spec["subjects"],
        retention=RetentionPolicy(spec["retention"]),
        storage=StorageType(spec["storage"]),
        discard=DiscardPolicy(spec["discard"]),
        max_age=_go_seconds(spec["maxAge"]) if "maxAge" in spec else None,
        duplicate_window=_go_seconds(spec["duplicateWindow"]),
        max_msg_size=spec["maxMsgSize"],
        allow_direct=spec["allowDirect"],
        deny_delete=spec["denyDelete"],
        num_replicas=1,
    )


def _kv_config(spec: dict[str, Any]) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=spec["bucket"],
        description=spec.get("description"),
        history=spec["history"],
        ttl=_go_seconds(spec["ttl"]) if "ttl" in spec else None,
        storage=StorageType(spec["storage"]),
        replicas=1,
        direct=True,  # NACK creates buckets with nats.go, which always allows direct gets
    )


@pytest.fixture
def secured_nats(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    passwords = _passwords()
    port = free_port()
    conf = _server_config(tmp_path, port, passwords)
    with (tmp_path / "stdout.log").open("ab") as log:
        proc = subprocess.Popen([_nats_binary(), "-c", str(conf)], stdout=log, stderr=log)
        try:
            wait_for_port("127.0.0.1", port, 20.0, proc)
            yield f"nats://127.0.0.1:{port}", passwords, tmp_path / "nats.log"
        finally:
            proc.terminate()
            proc.wait(10)


def _violations(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if "Violation" in line]


def _as_generated_user(url: str, passwords: dict[str, str], service: str) -> dict[str, Any]:
    """The settings of ``service`` connecting as its generated NATS user, leaving the
    streams, buckets and durables to NACK (``_provision_as_nack``)."""
    return {
        "nats_url": url,
        "nats_user": service,
        "nats_password": passwords[service],
        "provision": False,
    }


async def _provision_as_nack(url: str, passwords: dict[str, str]) -> None:
    bus = await Bus.connect(url, name="nack", user="nack", password=passwords["nack"])
    try:
        # As NACK would, from the generated resources (one replica on a single server).
        for doc in _nack("streams.yaml"):
            await bus.js.add_stream(_stream_config(doc["spec"]))
        # Then the operator's one step NACK cannot do yet (docs/deploy.md): allow schedules.
        admin = await Bus.connect(url, name="admin", user="admin", password=passwords["admin"])
        try:
            for stream in ("FLOW_TIMERS", "OUTBOUND"):
                config = (await admin.js.stream_info(stream)).config
                config.allow_msg_schedules = True
                await admin.js.update_stream(config)
        finally:
            await admin.close()
        for doc in _nack("keyvalues.yaml"):
            await bus.js.create_key_value(_kv_config(doc["spec"]))
        for doc in _nack_consumers():
            spec = doc["spec"]
            await bus.js.add_consumer(spec["streamName"], _consumer_config(spec))
        store = AccountStore(await bus.kv("accounts"), keyring())
        await store.put(
            Account(
                channel=Channel.TELEGRAM,
                id="demo",
                workspace_id="demo",
                secrets={"token": "100000001:test", "webhook_secret": SECRET},
            )
        )
    finally:
        await bus.close()


async def test_services_run_on_their_generated_users(
    secured_nats: tuple[str, dict[str, str], Path],
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, passwords, log = secured_nats
    await _provision_as_nack(url, passwords)
    env = service_env(url, postgres_url, SWITCHBOARD_PROVISION="false")
    for service in ("ingest", "crm"):
        env[f"SWITCHBOARD_{service.upper()}_NATS_USER"] = service
        env[f"SWITCHBOARD_{service.upper()}_NATS_PASSWORD"] = passwords[service]
    env["SWITCHBOARD_ADMIN_TOKEN"] = "admin-token-for-tests"
    env["SWITCHBOARD_API_KEY_PEPPER"] = "pepper-for-permission-tests"  # stored keys on
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    ingest = create_ingest(load_settings(IngestSettings))
    crm = create_crm(load_settings(CrmSettings))
    async with (
        asyncio.timeout(90),  # a missing permission must fail, not hang
        serve_app(ingest) as ingest_url,
        serve_app(crm) as crm_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        hook = f"{ingest_url}/webhooks/telegram/demo"
        sent = await http.post(
            hook,
            json=text_update(7001, "hello from a least-privilege user"),
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        )
        assert sent.status_code == 200, sent.text
        listed = await http.get(
            f"{ingest_url}/admin/accounts",
            headers={"Authorization": "Bearer admin-token-for-tests"},
        )
        assert listed.status_code == 200, listed.text  # KV keys(): an ordered watcher

        auth = {"Authorization": f"Bearer {API_KEY}"}

        async def contact() -> dict[str, Any] | None:
            items = (await http.get(f"{crm_url}/v1/contacts", headers=auth)).json()["items"]
            return items[0] if items else None

        found = await eventually(contact, timeout=30, message="contact resolved and projected")
        assert found is not None
        # Stored API keys: ingest's user creates one in the api_keys bucket, crm's user
        # watches the bucket, checks the key and records its last use.
        operator = {"Authorization": "Bearer admin-token-for-tests"}
        made = await http.post(f"{ingest_url}/admin/api-keys", headers=operator,
                               json={"workspace_id": "demo", "scopes": ["read"]})  # fmt: skip
        assert made.status_code == 201, made.text
        stored = {"Authorization": f"Bearer {made.json()['key']}"}
        assert (await http.get(f"{crm_url}/v1/contacts", headers=stored)).status_code == 200

        async def last_use_recorded() -> bool:
            keys = (await http.get(f"{ingest_url}/admin/api-keys", headers=operator)).json()
            return any(k["last_used_at"] for k in keys["items"])

        await eventually(last_use_recorded, timeout=30, message="crm recorded the key's use")
        # A command over the bus: the crm-commands durable, an append to CRM, the projection.
        admin = await Bus.connect(url, name="admin", user="admin", password=passwords["admin"])
        try:
            await admin.publish(
                UpdateContact(contact_id=found["id"], tags_added=("vip",)), workspace_id="demo"
            )
        finally:
            await admin.close()

        async def tagged() -> bool:
            body = (await http.get(f"{crm_url}/v1/contacts/{found['id']}", headers=auth)).json()
            return "vip" in body.get("tags", [])

        await eventually(tagged, timeout=30, message="command applied through the bus")
        # A campaign to a segment: expanded from the CRM's tables, handed to outbound.
        campaign = await http.post(
            f"{crm_url}/v1/campaigns",
            headers=auth,
            json={
                "campaign_id": "cmp_perm",
                "segment": {"channel": "telegram", "tags": ["vip"]},
                "content": {"kind": "text", "text": "news"},
            },
        )
        assert campaign.status_code == 202, campaign.text
        assert campaign.json()["recipients"] == 1
        ready = [(await http.get(f"{u}/readyz")).status_code for u in (ingest_url, crm_url)]
        assert ready == [200, 200]

    # `switchboard crm rebuild` as the crm user: ephemeral consumers, the swap.
    report = await rebuild(load_settings(CrmSettings), log=lambda _line: None)
    assert report.positions["conversations"] >= 1
    assert report.schema_old is None

    assert _violations(log) == [], "\n".join(_violations(log))

    # NACK owns the durables: the services' own create requests must not have changed them.
    check = await Bus.connect(url, name="check", user="admin", password=passwords["admin"])
    try:
        assert await _count(check, "OUTBOUND", "cmd.outbound.campaign_start.>") == 1
        for doc in _nack_consumers():
            spec = doc["spec"]
            info = await check.js.consumer_info(spec["streamName"], spec["durableName"])
            got, want = info.config, _consumer_config(spec)
            for field in (
                "ack_policy", "ack_wait", "max_deliver", "max_ack_pending", "deliver_policy",
                "replay_policy", "filter_subject", "filter_subjects", "description",
            ):  # fmt: skip
                assert getattr(got, field) == getattr(want, field), (spec["durableName"], field)
    finally:
        await check.close()


def _fake_bot_api() -> Starlette:
    """Telegram's Bot API as far as a text send goes: every method answers one message."""

    async def call(request: Request) -> JSONResponse:
        body = await request.json()
        message = {"message_id": 4242, "date": 0, "chat": {"id": int(body.get("chat_id", 1))}}
        return JSONResponse({"ok": True, "result": message})

    return Starlette(routes=[Route("/{bot}/{method}", call, methods=["POST"])])


async def test_outbound_runs_on_its_generated_user(
    secured_nats: tuple[str, dict[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sends through the API and the outbound-sends durable: the accounts watch, the shared
    rate limit and attempt records (KV), delivery.*, conv.message_sent and a dead letter."""
    url, passwords, log = secured_nats
    await _provision_as_nack(url, passwords)
    env = service_env(url, None, SWITCHBOARD_PROVISION="false")
    env["SWITCHBOARD_OUTBOUND_NATS_USER"] = "outbound"
    env["SWITCHBOARD_OUTBOUND_NATS_PASSWORD"] = passwords["outbound"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    async with (
        asyncio.timeout(90),
        serve_app(_fake_bot_api()) as bot_api,
        httpx.AsyncClient(timeout=10) as http,
    ):
        admin = await Bus.connect(url, name="admin", user="admin", password=passwords["admin"])
        try:
            await AccountStore(await admin.kv("accounts"), keyring()).put(
                Account(
                    channel=Channel.TELEGRAM,
                    id="out",
                    workspace_id="demo",
                    secrets={"token": "100000002:test"},
                    settings={"api_base_url": bot_api},
                )
            )
        finally:
            await admin.close()
        outbound = create_outbound(load_settings(OutboundSettings))
        async with serve_app(outbound) as out_url:
            auth = {"Authorization": f"Bearer {API_KEY}"}

            async def send(message_id: str, account: str, **extra: Any) -> httpx.Response:
                body = {
                    "message_id": message_id,
                    "channel": "telegram",
                    "account": account,
                    "recipient": "7001",
                    "content": {"kind": "text", "text": "hello"},
                }
                return await http.post(
                    f"{out_url}/v1/messages", headers=auth, json={**body, **extra}
                )  # fmt: skip

            for message_id, account, status in (("m-sent", "out", 202), ("m-x", "nobody", 404)):
                queued = await send(message_id, account)
                assert queued.status_code == status, queued.text
            # The API refuses an unknown account; a command on the bus fails as a delivery.
            admin = await Bus.connect(url, name="admin", user="admin", password=passwords["admin"])
            try:
                failing = text_send("m-failed", "7001", "hello", account="nobody")
                await admin.publish(failing, workspace_id="demo")
                # A copy of a pending command (another envelope id): outbound looks the
                # owner up in the stream (a message get) and drops the copy.
                later = text_send(
                    "m-later",
                    "7001",
                    "later",
                    account="out",
                    not_before=datetime.now(UTC) + timedelta(seconds=2),
                )
                await admin.publish(later, workspace_id="demo")
                await admin.publish(later, workspace_id="demo", id="m-later-copy")
            finally:
                await admin.close()

            def status_of(message_id: str) -> Any:
                async def get() -> str | None:
                    r = await http.get(f"{out_url}/v1/messages/{message_id}", headers=auth)
                    status = r.json().get("status") if r.status_code == 200 else None
                    return status if status in ("sent", "failed") else None

                return get

            sent = await eventually(status_of("m-sent"), timeout=30, message="sent")
            assert await eventually(status_of("m-later"), timeout=30) == "sent"
            failed = await eventually(status_of("m-failed"), timeout=30, message="failed")
            assert (sent, failed) == ("sent", "failed")
            # Two scheduled sends whose commands leave the stream before their time: one
            # moved earlier (its command replaced), one whose recipient is erased.
            hour = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            for message_id, recipient in (("m-moved", "7001"), ("m-erased", "7002")):
                queued = await send(message_id, "out", recipient=recipient, not_before=hour)
                assert queued.status_code == 202, queued.text

                async def recorded(message_id: str = message_id) -> bool:
                    r = await http.get(f"{out_url}/v1/messages/{message_id}", headers=auth)
                    return r.status_code == 200

                await eventually(recorded, timeout=30, message=f"{message_id} on record")
            soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
            moved = await http.post(
                f"{out_url}/v1/messages/m-moved/reschedule",
                headers=auth,
                json={"not_before": soon},
            )
            assert moved.status_code == 200, moved.text
            admin = await Bus.connect(url, name="admin", user="admin", password=passwords["admin"])
            try:
                hashes = [erased_identity_hash("demo", "telegram", "7002")]
                erased = ContactErased(contact_id="ct_gone", identity_hashes=hashes)
                await admin.publish(erased, workspace_id="demo")
            finally:
                await admin.close()
            assert await eventually(status_of("m-moved"), timeout=30) == "sent"
            assert await eventually(status_of("m-erased"), timeout=30) == "failed"
            assert (await http.get(f"{out_url}/readyz")).status_code == 200

    assert _violations(log) == [], "\n".join(_violations(log))
    check = await Bus.connect(url, name="check", user="admin", password=passwords["admin"])
    try:
        delivery = await check.js.stream_info("DELIVERY")
        assert delivery.state.messages >= 4  # queued, sent; queued, failed
        assert (await check.js.stream_info("DLQ")).state.messages == 1
        assert (await check.js.stream_info("CONV")).state.messages == 3  # message_sent x3
        # the copy dropped, the moved send's first command and the erased one's deleted
        assert (await check.js.stream_info("OUTBOUND")).state.messages == 0
        spec = next(
            d["spec"] for d in _nack_consumers() if d["spec"]["durableName"] == "outbound-sends"
        )
        info = await check.js.consumer_info(spec["streamName"], spec["durableName"])
        assert info.config.max_deliver == _consumer_config(spec).max_deliver
        assert info.config.ack_wait == _consumer_config(spec).ack_wait
    finally:
        await check.close()


async def _count(bus: Bus, stream: str, subjects: str) -> int:
    """Messages of ``stream`` on subjects matching ``subjects`` (erased ones are gone)."""
    info = await bus.js.stream_info(stream, subjects_filter=subjects)
    return sum((info.state.subjects or {}).values())


async def test_outbound_lists_its_buckets_on_its_generated_user(
    secured_nats: tuple[str, dict[str, str], Path],
) -> None:
    """The calendar's overlap check and the erasure list their buckets with a pull consumer
    (``runtime.kv.entries``): create, info and next-message requests on the KV streams."""
    url, passwords, _ = secured_nats
    await _provision_as_nack(url, passwords)
    bus = await Bus.connect(url, name="outbound", user="outbound", password=passwords["outbound"])
    try:
        calendar, sends = await bus.kv("calendar"), await bus.kv("sends")
        await calendar.put("post.ws.one", b"{}")
        await sends.put("send.ws.one", b"{}")
        async with asyncio.timeout(20):
            assert [e.key for e in await entries(bus, "calendar", "post.ws.*")] == ["post.ws.one"]
            assert [e.key for e in await entries(bus, "sends", "send.>")] == ["send.ws.one"]
    finally:
        await bus.close()


async def test_mtproto_runs_on_its_generated_user(
    secured_nats: tuple[str, dict[str, str], Path], postgres_url: str
) -> None:
    """Login over the bus (the mtproto-commands durable, leases, erasing the commands), a
    channel read live (conv.*, the dedup bucket), a send through the session's own durable
    (created, pulled, acked, one poison message dead-lettered) and logout (the durable is
    deleted): everything the topology grants beyond the usual, used for real."""
    url, passwords, log = secured_nats
    await _provision_as_nack(url, passwords)
    box = Sandbox()
    fake = box.mtproto
    phone = "+15557770001"
    seller, _ = fake.add_user(phone, first_name="Seller")
    buyer, _ = fake.add_user("+15557770002", first_name="Buyer", username="buyer_one")
    fake.add_channel("Deals", "deals_chan", creator=buyer, members=[seller])
    admin_token = "mtproto-admin-token-for-tests"
    gateway_keys = "m1:" + Keyring.generate_key()
    ring = Keyring.from_mapping(parse_keyring(gateway_keys))
    async with (
        asyncio.timeout(90),
        serve(box.app()) as sandbox_url,
        # The session is workspace demo's: its API key acts on it (the operator token does not).
        httpx.AsyncClient(timeout=10, headers={"Authorization": "Bearer live-demo-key"}) as http,
    ):
        settings = MtprotoSettings(
            **_as_generated_user(url, passwords, "mtproto"),
            database_url=postgres_url,
            encryption_keys=gateway_keys,
            admin_token=admin_token,
            api_keys="live-demo-key=demo",
            adapter="sandbox",
            sandbox_url=sandbox_url,
            api_id=12345,
            api_hash="0123456789abcdef0123456789abcdef",
            lease_ttl_s=3.0,
            tick_s=0.25,
            send_interval_s=0.0,
            http_port=0,
            shutdown_grace_s=5.0,
        )
        admin = await Bus.connect(url, name="admin", user="admin", password=passwords["admin"])
        try:

            def seen(stream: str, subjects: str, at_least: int = 1) -> Any:
                async def check() -> bool:
                    return await _count(admin, stream, subjects) >= at_least

                return check

            async with serve_app(create_mtproto(settings)) as gateway:
                await admin.publish(
                    StartLogin(session_id="seller", phone=phone), workspace_id="demo"
                )
                await eventually(seen("MTPROTO", "mtproto.login_code_sent.>"), message="code")
                code = fake.code(phone)
                assert code is not None
                await admin.publish(
                    SubmitLoginCode(
                        session_id="seller",
                        sealed_code=seal(ring, SubmitLoginCode.name, "seller", "code", code.code),
                    ),
                    workspace_id="demo",
                )
                await eventually(seen("MTPROTO", "mtproto.session_connected.>"), message="conn")

                r = await http.post(
                    f"{gateway}/v1/sessions/seller/subscriptions", json={"peer": "@deals_chan"}
                )
                assert r.status_code in (201, 202), r.text
                await eventually(seen("MTPROTO", "mtproto.subscription_added.>"), message="sub")
                fake.post("@deals_chan", "fresh deal")
                await eventually(seen("CONV", "conv.message_received.>"), message="live read")

                r = await http.post(
                    f"{gateway}/v1/sessions/seller/messages",
                    json={"message_id": "m-1", "peer": "@buyer_one", "text": "hello"},
                )
                assert r.status_code == 202, r.text
                await eventually(seen("DELIVERY", "delivery.sent.>"), message="sent")
                await eventually(seen("CONV", "conv.message_sent.>"), message="message_sent")
                await admin.js.publish("cmd.mtproto.send.v1.seller", b"{}")  # no envelope
                await eventually(seen("DLQ", "dlq.>"), message="poison send dead-lettered")

                queue = send_consumer("seller")
                assert (await admin.js.consumer_info("MTPROTO", queue)).config.durable_name
                r = await http.delete(f"{gateway}/v1/sessions/seller")
                assert r.status_code in (200, 202), r.text
                await eventually(seen("MTPROTO", "mtproto.session_revoked.>"), message="logout")

                async def queue_deleted() -> bool:
                    names = [c.name async for c in _consumers(admin, "MTPROTO")]
                    return queue not in names

                await eventually(queue_deleted, message="the session's send queue deleted")
                assert (await http.get(f"{gateway}/readyz")).status_code == 200

            assert _violations(log) == [], "\n".join(_violations(log))
            for step in ("login_start", "login_submit_code"):  # erased once handled
                assert await _count(admin, "MTPROTO", f"cmd.mtproto.{step}.>") == 0, step
            assert texts_sent(fake, buyer, seller) == ["hello"]
            spec = next(
                d["spec"]
                for d in _nack_consumers()
                if d["spec"]["durableName"] == "mtproto-commands"
            )
            info = await admin.js.consumer_info("MTPROTO", "mtproto-commands")
            want = _consumer_config(spec)
            for field in ("ack_wait", "max_deliver", "filter_subjects", "max_ack_pending"):
                assert getattr(info.config, field) == getattr(want, field), field
        finally:
            await admin.close()


async def test_analytics_runs_on_its_generated_user(
    secured_nats: tuple[str, dict[str, str], Path], postgres_url: str
) -> None:
    """A few events on each stream it reads (its four projections: ephemeral consumers from
    their checkpoints, created, pulled and deleted), a poison event dead-lettered, and a lead
    won: one conversion command published to OUTBOUND. NACK's durables on the streams it
    reads (crm-resolver, mtproto-commands) are untouched."""
    url, passwords, log = secured_nats
    await _provision_as_nack(url, passwords)
    settings = AnalyticsSettings(
        **_as_generated_user(url, passwords, "analytics"),
        database_url=postgres_url,
        api_keys={API_KEY: "demo"},
        conversion_pixel="px-live",
        conversion_max_age_s=0,  # the events are dated 2026-11-20, past Meta's 7 days by now
        http_port=0,
        metrics_refresh_s=0.5,
        shutdown_grace_s=5.0,
    )
    auth = {"Authorization": f"Bearer {API_KEY}"}
    window = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}
    admin = await Bus.connect(url, name="admin", user="admin", password=passwords["admin"])
    try:
        at = T0 + timedelta(minutes=1)
        events: list[Any] = [
            received(Channel.TELEGRAM, "shop", "555", "hi", 1),
            sent(Channel.TELEGRAM, "shop", "555", "m-1", "900", "hello!", 30),
            DeliveryQueued(message_id="m-1", channel=Channel.TELEGRAM, account="shop",
                           recipient="555", at=T0 + timedelta(seconds=29)),
            DeliverySent(message_id="m-1", channel=Channel.TELEGRAM, account="shop",
                         recipient="555", at=T0 + timedelta(seconds=30),
                         provider_message_id="900"),
            ContactCreated(contact_id="ct_1", display_name="Ada Lovelace",
                           identities=(Identity(channel=Channel.TELEGRAM, external_id="555"),),
                           source_channel=Channel.TELEGRAM),
            LeadCreated(lead_id="ld_1", contact_id="ct_1", stage="new",
                        source_channel=Channel.TELEGRAM),
            LeadStageChanged(lead_id="ld_1", contact_id="ct_1", from_stage="new",
                             to_stage="won"),
            SessionConnected(session_id="s1", at=at, instance="i-1"),
        ]  # fmt: skip
        for i, event in enumerate(events):
            await admin.publish(event, workspace_id="demo", time=at + timedelta(seconds=i))
        await admin.js.publish(  # an envelope whose body does not validate: poison
            "conv.message_received.v1.telegram.shop",
            b'{"channel": "telegram"}',
            headers={"ce-id": "poison-1", "ce-type": "switchboard.conv.message_received.v1",
                     "ce-source": "test", "ce-specversion": "1.0", "workspace-id": "demo",
                     "Nats-Msg-Id": "poison-1"},
        )  # fmt: skip

        async with (
            asyncio.timeout(90),
            serve_app(create_analytics(settings)) as api,
            httpx.AsyncClient(timeout=10, headers=auth) as http,
        ):

            def answers(path: str, check: Any) -> Any:
                async def probe() -> Any:
                    r = await http.get(f"{api}{path}", params=window)
                    return r.json() if r.status_code == 200 and check(r.json()) else None

                return probe

            messages = await eventually(
                answers("/v1/messages", lambda b: b["totals"]["outbound"] == 1), message="CONV"
            )
            assert messages["totals"] == {"inbound": 1, "outbound": 1}
            await eventually(
                answers("/v1/deliveries", lambda b: b["totals"]["sent"] == 1), message="DELIVERY"
            )
            await eventually(
                answers("/v1/mtproto", lambda b: bool(b["sessions"])), message="MTPROTO"
            )

            def published(body: Any) -> bool:
                return [c["published"] for c in body["items"]] == [True]

            await eventually(
                answers("/v1/conversions", published),
                message="CRM: the won lead's conversion decided and published",
            )
            conversions = await _count(admin, "OUTBOUND", "cmd.outbound.conversion.>")
            assert conversions == 1
            await eventually(
                lambda: _count_at_least(admin, "DLQ", "dlq.conv.>", 1), message="poison DLQ'd"
            )
            assert (await http.get(f"{api}/readyz")).status_code == 200
        # Shut down: each projection has deleted its consumer on the way out.

        assert _violations(log) == [], "\n".join(_violations(log))
        assert await _count(admin, "OUTBOUND", "cmd.outbound.conversion.v1.metacapi.px-live") == 1
        # NACK's durables on the streams it read: untouched (crm-resolver still holds both
        # inbound messages, the good one and the poison, for crm).
        for stream, durable in (("CONV", "crm-resolver"), ("MTPROTO", "mtproto-commands")):
            info = await admin.js.consumer_info(stream, durable)
            spec = next(d["spec"] for d in _nack_consumers() if d["spec"]["durableName"] == durable)
            assert info.config.filter_subjects == spec["filterSubjects"], durable
        assert (await admin.js.consumer_info("CONV", "crm-resolver")).num_pending == 2
    finally:
        await admin.close()


async def test_flows_runs_on_its_generated_user(
    secured_nats: tuple[str, dict[str, str], Path],
) -> None:
    """A flow saved and published (appends with expected sequences on FLOWS, the definitions
    followed by an ephemeral consumer), a /start through the flows-conversations durable, the
    customer's contact looked up in CRM (a message get), a tag and a stage change as CRM
    commands, a delay as a message schedule fired through the flows-timers durable, and a
    send to OUTBOUND; the runs listed and read back."""
    url, passwords, log = secured_nats
    await _provision_as_nack(url, passwords)
    admin = await Bus.connect(url, name="admin", user="admin", password=passwords["admin"])
    try:
        ck = claim_key("demo", identity_key("telegram", "555"))
        await admin.publish(
            IdentityClaimed(claim_key=ck, key="telegram:555", contact_id="ct_1"),
            workspace_id="demo",
        )
        # As deployed: the k8s base gives every service the API key pepper, so flows follows
        # the stored keys (it could not read their bucket before, and answered 401 to them).
        settings = FlowsSettings(
            **_as_generated_user(url, passwords, "flows"),
            api_keys={API_KEY: "demo"},
            api_key_pepper="pepper-for-permission-tests",
            http_port=0,
            shutdown_grace_s=5.0,
        )
        keys = KeyStore(
            await admin.kv("api_keys"), b"pepper-for-permission-tests", lambda: datetime.now(UTC)
        )
        _, stored_key = await keys.create("demo", ["read"])
        flow = {
            "name": "live",
            "triggers": [{"type": "start"}],
            "start": "tag",
            "steps": {
                "tag": {"type": "tag", "add": ["vip"], "next": "stage"},
                "stage": {"type": "lead", "action": "move_stage", "stage": "qualified",
                          "next": "wait"},
                "wait": {"type": "delay", "seconds": 1, "next": "bye"},
                "bye": {"type": "end", "text": "Thanks!"},
            },
        }  # fmt: skip
        auth = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            asyncio.timeout(90),
            serve_app(create_flows(settings)) as api,
            httpx.AsyncClient(timeout=10, headers=auth) as http,
        ):
            stored = {"Authorization": f"Bearer {stored_key}"}

            async def stored_key_works() -> bool:
                return (await http.get(f"{api}/v1/flows", headers=stored)).status_code == 200

            await eventually(stored_key_works, timeout=30, message="flows took a stored key")
            r = await http.post(f"{api}/v1/flows", json=flow)
            assert r.status_code == 201, r.text
            flow_id = r.json()["id"]
            r = await http.post(f"{api}/v1/flows/{flow_id}/publish")
            assert r.status_code == 200, r.text
            await admin.publish(
                received(Channel.TELEGRAM, "shop", "555", "/start", 1), workspace_id="demo"
            )

            async def ended() -> Any:
                items = (await http.get(f"{api}/v1/runs")).json()["items"]
                return items if items and items[0]["status"] == "ended" else None

            (run,) = await eventually(ended, timeout=30, message="run ended after its delay")
            detail = (await http.get(f"{api}/v1/runs/{run['id']}")).json()
            assert [h["input"]["kind"] for h in detail["history"]] == ["start:start", "timer"]
            assert (await http.get(f"{api}/readyz")).status_code == 200
        assert _violations(log) == [], "\n".join(_violations(log))
        assert await _count(admin, "OUTBOUND", "cmd.outbound.send.>") == 1
        assert await _count(admin, "CRM_COMMANDS", "cmd.crm.update_contact.v1.ct_1") == 1
        lead = f"cmd.crm.change_lead_stage.v1.{first_lead_id('ct_1')}"
        assert await _count(admin, "CRM_COMMANDS", lead) == 1
    finally:
        await admin.close()


async def _count_at_least(bus: Bus, stream: str, subjects: str, n: int) -> bool:
    return await _count(bus, stream, subjects) >= n


async def _consumers(bus: Bus, stream: str) -> Any:
    for info in await bus.js.consumers_info(stream):
        yield info


def texts_sent(fake: Any, to: Any, sender: Any) -> list[str]:
    return [m["text"] for m in fake.messages(to, user=sender)]


@pytest.mark.parametrize(
    ("user", "subject"),
    [
        ("ingest", "crm.contact_created.v1.x"),  # another service's events
        ("ingest", "cmd.crm.update_contact.v1.x"),
        ("ingest", "$JS.API.STREAM.CREATE.EVIL"),  # no stream administration
        ("ingest", "$JS.API.STREAM.DELETE.RAW"),
        ("ingest", "$JS.API.STREAM.PURGE.RAW"),
        ("ingest", "$JS.API.CONSUMER.DELETE.RAW.ingest-normalizer"),
        ("ingest", "$KV.ratelimit.k"),  # a bucket it does not use
        ("crm", "raw.telegram.v1.demo"),
        ("crm", "conv.message_received.v1.x"),
        ("crm", "$JS.API.STREAM.UPDATE.CRM"),
        ("crm", "$JS.API.STREAM.MSG.DELETE.CRM"),
        ("crm", "$KV.accounts.k"),  # reads accounts (media downloads), never writes them
        ("outbound", "raw.telegram.v1.demo"),
        ("outbound", "delivery.receipt.v1.x"),
        ("outbound", "crm.contact_created.v1.x"),
        ("outbound", "$KV.accounts.k"),  # reads accounts, never writes them
        ("outbound", "$KV.dedup.k"),
        ("outbound", "$JS.API.STREAM.PURGE.OUTBOUND"),
        ("outbound", "$JS.API.CONSUMER.DELETE.OUTBOUND.outbound-sends"),
        # mtproto: its runtime-durable wildcard stops at NACK's consumer
        ("mtproto", "$JS.API.CONSUMER.DELETE.MTPROTO.mtproto-commands"),
        ("mtproto", "$JS.API.CONSUMER.DURABLE.CREATE.CONV.x"),  # MTPROTO only
        ("mtproto", "$JS.API.CONSUMER.DELETE.OUTBOUND.outbound-sends"),
        ("mtproto", "$JS.API.STREAM.MSG.DELETE.CONV"),  # erasing: MTPROTO only
        ("mtproto", "$JS.API.STREAM.PURGE.MTPROTO"),
        ("mtproto", "cmd.mtproto.login_start.v1.x"),  # commands come from others
        ("mtproto", "delivery.queued.v1.x"),
        ("mtproto", "crm.contact_created.v1.x"),
        ("mtproto", "$KV.ratelimit.k"),  # outbound's limits: never its business
        # analytics: reads four streams and writes only conversion commands
        ("analytics", "crm.lead_created.v1.x"),
        ("analytics", "conv.message_received.v1.x"),
        ("analytics", "cmd.outbound.send.v1.telegram.x"),
        ("analytics", "cmd.crm.change_lead_stage.v1.x"),
        ("analytics", "$JS.API.CONSUMER.DELETE.CONV.crm-resolver"),  # NACK's, by name
        ("analytics", "$JS.API.CONSUMER.MSG.NEXT.CONV.crm-resolver"),
        ("analytics", "$JS.API.CONSUMER.CREATE.MTPROTO.mtproto-commands"),
        ("analytics", "$JS.API.CONSUMER.DELETE.OUTBOUND.outbound-sends"),  # not a stream it reads
        ("analytics", "$JS.API.CONSUMER.CREATE.OUTBOUND"),
        ("analytics", "$JS.API.STREAM.MSG.DELETE.CRM"),
        ("analytics", "$JS.API.STREAM.PURGE.CONV"),
        ("analytics", "$JS.API.DIRECT.GET.CRM"),  # no message gets
        ("analytics", "$KV.accounts.k"),  # reads the pixels' records, writes no account
        # flows: its own streams, sends and three CRM commands
        ("flows", "crm.lead_stage_changed.v1.x"),
        ("flows", "cmd.crm.erase_contact.v1.x"),
        ("flows", "cmd.outbound.bulk_send.v1.telegram.x"),
        ("flows", "conv.message_sent.v1.x"),
        ("flows", "$JS.API.STREAM.UPDATE.FLOW_TIMERS"),
        ("flows", "$JS.API.CONSUMER.DELETE.FLOW_TIMERS.flows-timers"),
        ("flows", "$JS.API.STREAM.PURGE.CRM"),  # reads the CRM, never changes it
        ("flows", "$KV.accounts.k"),
    ],
)
async def test_users_are_refused_what_they_do_not_need(
    secured_nats: tuple[str, dict[str, str], Path], user: str, subject: str
) -> None:
    url, passwords, _ = secured_nats
    await _refused(url, user, passwords[user], lambda nc: nc.publish(subject, b"{}"))


async def test_subscribing_outside_the_inbox_is_refused(
    secured_nats: tuple[str, dict[str, str], Path],
) -> None:
    url, passwords, _ = secured_nats
    await _refused(url, "ingest", passwords["ingest"], lambda nc: nc.subscribe("crm.>"))


async def _refused(
    url: str, user: str, password: str, act: Callable[[NatsClient], Awaitable[object]]
) -> None:
    """``user`` does ``act`` and the server answers with a permissions violation."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    async def violated() -> bool:
        return any("permissions violation" in e.lower() for e in errors)

    nc = NatsClient()
    await nc.connect(url, user=user, password=password, error_cb=on_error)
    try:
        await act(nc)
        await nc.flush()
        await eventually(violated, message=f"{user} refused")
    finally:
        await nc.close()
