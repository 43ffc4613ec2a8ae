"""Chaos on the whole platform: a 3-node JetStream cluster, its own Postgres, and several
instances of every service as processes, under sustained traffic from the sandbox.

One run goes through the scenarios in turn - SIGKILL of a random instance of each service,
a Postgres restart, a provider outage with latency spikes, a flood of duplicate webhooks,
SIGKILL of the node leading the OUTBOUND stream and of those leading the buckets in use
(``sends``, ``leases``) while sends and MTProto lease renewals go on, a Postgres outage and
a NATS quorum loss with traffic flowing (``CHAOS_OUTAGE_S`` each), an oversized webhook
against NATS's default ``max_payload`` - and then checks the invariants over everything
that happened:

- every webhook Telegram got a 200 for is in ``CONV`` exactly once and in the CRM once;
- every send command was delivered; duplicates at most the sends in flight (delivered to an
  instance, not yet acknowledged) at the moments of the kills, as measured then;
- the DLQ is empty: no outage, however long, made a message poison;
- the sandbox never answered 429;
- no MTProto session was ever connected twice (the fake Telegram's connection log), and
  every session is connected again at the end;
- the analytics totals equal the sandbox's counts.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tests.support.outbound import text_send
from tests.support.platform import ADMIN, Platform
from tests.support.stack import API_KEY, register_bot
from tests.support.streams import BUSY, stream_messages

from switchboard.events.catalog.outbound import SendMessage
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
COUNTS = {"ingest": 2, "crm": 2, "outbound": 3, "mtproto": 3, "analytics": 1}
SESSIONS = 9
MTPROTO_CONTROL = "/_sandbox/mtproto"
BOTS = {
    "shop-a": "400000001:chaos-platform-a-0123456789",
    "shop-b": "400000002:chaos-platform-b-0123456789",
}
SCALE = int(os.environ.get("CHAOS_SCALE", "1"))  # `just chaos` runs a longer version
INBOUND_PER_PHASE = 60 * SCALE  # per bot
SENDS_PER_PHASE = 40 * SCALE
# How long the Postgres outage and the NATS quorum loss last (`just chaos`: 60 s each).
OUTAGE_S = float(os.environ.get("CHAOS_OUTAGE_S", "5"))


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[tuple[Platform, Sandbox]]:
    box = Sandbox(SandboxConfig())
    for account, token in BOTS.items():
        box.telegram.add_bot(token, account)
    async with serve(box.app()) as sandbox_url:
        plat = Platform(
            tmp_path,
            COUNTS,
            sandbox_url,
            extra_env={
                "SWITCHBOARD_INGEST_TELEGRAM_API_URL": f"{sandbox_url}/telegram",
                "SWITCHBOARD_OUTBOUND_BACKOFF_BASE_S": "0.1",
                "SWITCHBOARD_OUTBOUND_BREAKER_COOLDOWN_S": "1",
                "SWITCHBOARD_SANDBOX_URL": sandbox_url,
                "SWITCHBOARD_MTPROTO_ADAPTER": "sandbox",
                "SWITCHBOARD_MTPROTO_LEASE_TTL_S": "4",
                # A holder must be disconnected `margin` before its lease could lapse; with
                # the default (ttl / 5 = 0.8 s) a gateway process stalled longer than that by
                # a loaded machine (load average 12 in a full parallel run) was still
                # connected when the next holder connected, and the fake Telegram revoked the
                # key. The margin is the documented setting for such stalls.
                "SWITCHBOARD_MTPROTO_LEASE_MARGIN_S": "2",
                "SWITCHBOARD_MTPROTO_TICK_S": "0.5",
                "SWITCHBOARD_MTPROTO_RECONNECT_INITIAL_S": "0.2",
                "SWITCHBOARD_MTPROTO_RECONNECT_MAX_S": "2",
            },
        )
        try:
            await plat.start()
            async with httpx.AsyncClient(timeout=15) as http:
                for i, (account, token) in enumerate(BOTS.items()):
                    await register_bot(
                        http, plat.url("ingest", i), ADMIN, account, token, sandbox_url
                    )
                await _mtproto_sessions(http, plat)
            yield plat, box
        finally:
            plat.stop()


async def _mtproto_sessions(http: httpx.AsyncClient, plat: Platform) -> None:
    """Telegram user sessions in the fake, imported into the gateways, all connected."""
    r = await http.post(
        f"{plat.sandbox_url}{MTPROTO_CONTROL}/users/bulk",
        json={
            "users": [
                {"phone": f"+1555800{i:04d}", "first_name": f"Agent{i}", "sessions": 1}
                for i in range(SESSIONS)
            ]
        },
    )
    assert r.status_code < 300, r.text
    for i, user in enumerate(r.json()["users"]):
        r = await http.put(
            f"{plat.url('mtproto')}/v1/sessions/agent-{i}",
            headers={"Authorization": f"Bearer {API_KEY}"},  # workspace demo's key
            json={
                "session": user["sessions"][0]["session"],
                "api_id": 1,
                "api_hash": "0123456789abcdef0123456789abcdef",
                "workspace_id": "demo",
            },
        )
        assert r.status_code == 201, r.text
    await eventually(
        lambda: _mtproto_active(http, plat, SESSIONS), timeout=60, message="sessions connected"
    )


async def _mtproto_log(http: httpx.AsyncClient, plat: Platform) -> dict[str, object]:
    r = await http.get(f"{plat.sandbox_url}{MTPROTO_CONTROL}/connections")
    r.raise_for_status()
    log: dict[str, object] = r.json()
    return log


async def _mtproto_active(http: httpx.AsyncClient, plat: Platform, n: int) -> bool:
    """True when ``n`` sessions are connected; else an assertion naming the keys that are
    not and what each gateway holds, so a failure says where a session got stuck."""
    log = await _mtproto_log(http, plat)
    if int(log["active"]) == n:  # type: ignore[call-overload]
        return True
    idle = [k["key_id"] for k in log["keys"] if not k["active"]]  # type: ignore[attr-defined]
    gateways = []
    for i in range(COUNTS["mtproto"]):
        try:
            r = await http.get(
                f"{plat.url('mtproto', i)}/v1/ownership",
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            gateways.append(r.json())
        except httpx.HTTPError as exc:
            gateways.append({"instance": i, "error": repr(exc)})
    raise AssertionError(
        f"active={log['active']} inactive keys={idle} duplicates={log['duplicates']} "
        f"gateways={gateways}"
    )


async def publish_patiently(bus: Bus, command: SendMessage) -> None:
    """The test's own commands ask again while the cluster is too busy (same id: once)."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(BUSY), stop=stop_after_delay(60 + OUTAGE_S), reraise=True
    ):
        with attempt:
            await bus.publish(command, workspace_id="demo", timeout=15)


class Traffic:
    """Inbound webhooks (sandbox users writing) and outbound replies, phase by phase."""

    def __init__(self, plat: Platform, box: Sandbox) -> None:
        self.plat, self.box = plat, box
        self.sent_ids: list[str] = []
        self.seed = 0

    def inbound(self) -> list[asyncio.Task[object]]:
        tasks = []
        for token in BOTS.values():
            self.seed += 1
            tasks.append(
                asyncio.create_task(
                    self.box.telegram.generate(
                        token, count=INBOUND_PER_PHASE, rate=30, seed=self.seed, mix={"text": 1}
                    )
                )
            )
        return tasks

    async def outbound(self, n: int = SENDS_PER_PHASE) -> None:
        bus = await Bus.connect(self.plat.nats_url, name="chaos-sender")
        try:
            for _ in range(n):
                i = len(self.sent_ids)
                message_id = f"chaos-{i}"
                await publish_patiently(
                    bus,
                    text_send(
                        message_id,
                        str(70_000 + i % 200),
                        message_id,
                        account=list(BOTS)[i % 2],
                    ),
                )
                self.sent_ids.append(message_id)
                await asyncio.sleep(0.02)
        finally:
            await bus.close()

    def delivered(self) -> int:
        return len(self.box.recorder.deliveries(provider="telegram"))

    def sent(self) -> int:
        return len(self.box.recorder.requests(provider="telegram", method="sendMessage"))

    async def sends_under_way(self) -> None:
        """Until the provider gets a send it had not got when called."""
        before = self.sent()

        async def more() -> bool:
            return self.sent() > before

        await eventually(more, timeout=60, message="sends under way")


async def sends_in_flight(plat: Platform) -> int:
    """Send commands delivered to an outbound instance and not yet acknowledged, now: the
    most a kill at this moment can have the provider called twice for."""
    bus = await Bus.connect(plat.nats_url, name="chaos-probe")
    try:
        total = 0
        for durable in ("outbound-sends", "outbound-bulk"):
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(BUSY), stop=stop_after_delay(60), reraise=True
            ):
                with attempt:
                    info = await bus.js.consumer_info("OUTBOUND", durable)
            total += int(info.num_ack_pending)
        return total
    finally:
        await bus.close()


async def dead_letters(plat: Platform) -> int:
    bus = await Bus.connect(plat.nats_url, name="chaos-probe")
    try:
        return int((await bus.js.stream_info("DLQ")).state.messages)
    finally:
        await bus.close()


# eleven processes and a cluster to start and stop, besides the run and its two outages
@pytest.mark.timeout(1200 + 4 * OUTAGE_S)
async def test_the_platform_survives_kills_restarts_outages_and_duplicates(
    platform: tuple[Platform, Sandbox],
) -> None:
    plat, box = platform
    rng = random.Random(20261121)
    traffic = Traffic(plat, box)

    # 1. SIGKILL a random instance of every service while traffic flows, then restart them.
    inbound = traffic.inbound()
    sending = asyncio.create_task(traffic.outbound())
    start = traffic.delivered()

    async def under_way() -> bool:
        return traffic.delivered() >= start + 20

    await eventually(under_way, timeout=30, message="traffic under way")
    in_flight_at_kills = await sends_in_flight(plat)  # measured just before the kills
    killed = [(service, plat.kill_random(service, rng)) for service in COUNTS]
    await asyncio.sleep(1.0)  # traffic keeps coming while they are dead
    for service, i in killed:
        await plat.restart(service, i)
    await asyncio.gather(*inbound, sending)

    # 2. Postgres restarts under traffic.
    inbound = traffic.inbound()
    sending = asyncio.create_task(traffic.outbound())
    await asyncio.sleep(1.0)
    await plat.restart_postgres()
    await asyncio.gather(*inbound, sending)

    # 3. The provider has an outage, then answers slowly.
    box.set_fault("telegram", None, outage_until=time.time() + 4, methods=["sendMessage"])
    sending = asyncio.create_task(traffic.outbound())
    await asyncio.sleep(4.5)
    box.faults.clear_all()
    box.set_fault("telegram", None, latency=0.3, methods=["sendMessage"])
    await sending
    await asyncio.sleep(1.0)
    box.faults.clear_all()

    # 4. A flood of duplicate webhooks: every update of phase 1 again, five times, at once.
    secrets = {
        account: box.telegram.bot(token).webhook.secret_token for account, token in BOTS.items()
    }
    again = box.telegram.generated_updates()[:INBOUND_PER_PHASE]
    # 100 requests in flight at any moment, each copy racing the others. Not all 3000 of the
    # long run at once: they starved this process's own event loop (which also serves the
    # sandbox) until connects and pool waits timed out, failing the test, not the platform.
    in_flight = asyncio.Semaphore(100)
    waiting = httpx.Timeout(15, pool=None)
    async with httpx.AsyncClient(timeout=waiting, limits=httpx.Limits(max_connections=100)) as http:
        ingest_of = {box.telegram.bot(token).id: i for i, token in enumerate(BOTS.values())}
        account_of = {box.telegram.bot(token).id: a for a, token in BOTS.items()}

        # A connection that breaks before the answer is delivered again, as Telegram does
        # (seen once under two test workers: a reset with no error on the ingest's side).
        broken: list[BaseException] = []

        async def post(g: object) -> int:
            bot_id = g.bot_id  # type: ignore[attr-defined]
            account = account_of[bot_id]
            async with in_flight:
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(httpx.TransportError),
                    stop=stop_after_attempt(5),
                    before_sleep=lambda state: broken.append(state.outcome.exception()),
                    reraise=True,
                ):
                    with attempt:
                        r = await http.post(
                            f"{plat.url('ingest', ingest_of[bot_id])}/webhooks/telegram/{account}",
                            json=g.update,  # type: ignore[attr-defined]
                            headers={"X-Telegram-Bot-Api-Secret-Token": secrets[account] or ""},
                        )
            return r.status_code

        statuses = await asyncio.gather(*(post(g) for g in again for _ in range(5)))
    assert set(statuses) == {200}

    # 5. The leaders die: of the OUTBOUND stream while sends go on, then of the buckets in
    # use (outbound's ``sends`` records, MTProto's ``leases`` renewed every half second).
    assert plat.nats is not None
    leader_kills: list[tuple[str, int]] = []
    for stream in ("OUTBOUND", "KV_sends", "KV_leases"):
        sending = asyncio.create_task(traffic.outbound(SENDS_PER_PHASE // 2))
        await traffic.sends_under_way()
        in_flight_at_kills += await sends_in_flight(plat)
        node = await plat.nats.kill_leader(stream)
        leader_kills.append((stream, node))
        new = await plat.nats.leader(stream)  # the survivors elected another
        assert new != node
        await sending
        plat.nats.restart(node)
        await plat.nats.wait_ready()
        await plat.nats.wait_streams_current()

    # 6. Postgres is down for OUTAGE_S while webhooks and sends flow.
    inbound = traffic.inbound()
    sending = asyncio.create_task(traffic.outbound())
    assert plat.postgres is not None
    plat.postgres.stop()
    await asyncio.sleep(OUTAGE_S)  # the outage's length is the scenario, not a wait
    plat.postgres.start()
    await asyncio.gather(*inbound, sending)

    # 7. NATS loses its quorum (two of three nodes down) for OUTAGE_S with traffic flowing:
    # webhooks get 503 and the provider retries, publishers wait, consumers back off.
    inbound = traffic.inbound()
    sending = asyncio.create_task(traffic.outbound())
    await traffic.sends_under_way()
    in_flight_at_kills += await sends_in_flight(plat)
    lost = [0, 1]
    for i in lost:
        plat.nats.kill(i)
    await asyncio.sleep(OUTAGE_S)
    for i in lost:
        plat.nats.restart(i)
    await plat.nats.wait_ready()
    await asyncio.gather(*inbound, sending)
    await plat.nats.wait_streams_current()

    # 8. A webhook over NATS's default max_payload (the cluster runs with it): 413 before
    # anything is published, and the ingest instance stays connected and healthy.
    account, token = next(iter(BOTS.items()))
    async with httpx.AsyncClient(timeout=30) as http:
        big = {"update_id": 10**9, "message": {"text": "x" * (1024 * 1024 - 200)}}
        r = await http.post(
            f"{plat.url('ingest', 0)}/webhooks/telegram/{account}",
            json=big,
            headers={"X-Telegram-Bot-Api-Secret-Token": secrets[account] or ""},
        )
        assert r.status_code == 413, r.text
        assert (await http.get(f"{plat.url('ingest', 0)}/healthz")).status_code == 200

    # Invariants over the whole run.
    for token in BOTS.values():
        await box.telegram.wait_delivered(token, timeout=120)
    expected = {(g.bot_id, g.update["update_id"]) for g in box.telegram.generated_updates()}

    async def conv_complete() -> list[object] | None:
        conv = await stream_messages(plat.nats_url, "CONV", "conv.message_received.>")
        return conv if len(conv) >= len(expected) else None

    conv = await eventually(conv_complete, timeout=90, message="every update in CONV")
    ids = [d.envelope.id for d in conv]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids)) == len(expected), "each webhook in CONV exactly once"

    async def crm_inbound() -> int | None:
        try:
            conn = await asyncpg.connect(plat.postgres_url)
        except (OSError, asyncpg.PostgresError):
            return None
        try:
            n = await conn.fetchval("SELECT count(*) FROM crm.messages WHERE direction = 'in'")
        finally:
            await conn.close()
        return int(n) if n >= len(expected) else None

    assert await eventually(crm_inbound, timeout=90, message="every message in the CRM") == len(
        expected
    ), "each webhook in the CRM exactly once"

    async def all_sent() -> Counter[str] | None:
        ok = Counter(
            str(r.params.get("text"))
            for r in box.recorder.requests(provider="telegram", method="sendMessage", ok=True)
        )
        return ok if set(traffic.sent_ids) <= set(ok) else None

    texts = await eventually(all_sent, timeout=120, interval=0.5, message="every send delivered")
    duplicates = sum(n - 1 for n in texts.values())
    assert duplicates <= in_flight_at_kills, (in_flight_at_kills, texts.most_common(5))
    assert box.recorder.requests(provider="telegram", status=429) == [], "no 429 ever"
    async with httpx.AsyncClient(timeout=15) as http:
        await eventually(
            lambda: _mtproto_active(http, plat, SESSIONS),
            timeout=60,
            message="every MTProto session connected again",
        )
        log = await _mtproto_log(http, plat)
    assert log["duplicates"] in ([], 0), "no MTProto session was ever connected twice"

    # Analytics totals equal what the sandbox saw: each webhook and each send once.
    want = {"inbound": len(expected), "outbound": len(traffic.sent_ids)}
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(hours=2)).isoformat(), "to": now.isoformat()}

    async def analytics_totals() -> dict[str, int] | None:
        async with httpx.AsyncClient(timeout=15) as http:
            r = await http.get(
                f"{plat.url('analytics')}/v1/messages",
                params=window,
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
        totals: dict[str, int] = r.json()["totals"]
        assert totals == want, totals  # kept by `eventually` as the last reason
        return totals

    await eventually(analytics_totals, timeout=90, message=f"analytics totals {want}")
    assert await dead_letters(plat) == 0, "no outage made a message poison"
    print(
        f"chaos platform: webhooks={len(expected)} (each once in CONV, CRM, analytics) "
        f"sends={len(traffic.sent_ids)} duplicates={duplicates} "
        f"in_flight_at_kills={in_flight_at_kills} kills={len(plat.kills)} "
        f"leader_kills={leader_kills} postgres_restarts=1 postgres_outage_s={OUTAGE_S} "
        f"quorum_loss_s={OUTAGE_S} provider_outage_s=4 duplicate_webhooks={len(statuses)} "
        f"webhook_redeliveries={len(broken)} "
        f"mtproto_sessions={SESSIONS} double_connects=0 sandbox_429=0 dlq=0"
    )
    assert int(log["max_concurrent"]) == 1  # type: ignore[call-overload]
    # The faults really happened (a scenario that injected nothing would prove nothing).
    assert {service for _, service, _ in plat.kills} == set(COUNTS)
    assert box.recorder.requests(provider="telegram", method="sendMessage", status=503)
