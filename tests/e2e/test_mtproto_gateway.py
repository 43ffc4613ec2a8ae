"""The MTProto gateway as real processes on real NATS and Postgres, running the production
Telethon adapter against the sandbox's wire-level MTProto fake (which refuses, and records,
any auth key connected twice at once).

* Three instances share 30 sessions; one is SIGKILLed: its sessions are taken over by the
  others when their leases expire (not left to the bucket's TTL), and no session is ever
  connected twice. Another is stopped gracefully: it hands its sessions back at once
  (before any lease could expire).
* A 20k-message backfill with injected flood waits (short ones held, a long one deferred)
  completes with every message in CONV exactly once, across a SIGKILL of the instance
  running it.
* Chaos: the instance owning the most of 30 sessions is SIGKILLed while their channels
  post: taken over by the lease's TTL, no key connected twice, every post in CONV exactly
  once per reading session.
* A dump of every stream (KV buckets included) and of every table, taken while it runs,
  holds no session string.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client.parser import text_string_to_metric_families

from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.embedded import free_port
from switchboard.runtime.testing import ServiceProcess, eventually
from switchboard.runtime.testing.dumps import postgres_dump, stream_dump
from switchboard.sandbox import Sandbox
from switchboard.sandbox.testing import serve_in_thread

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEY = "e1:" + Keyring.generate_key()
ADMIN = "mtproto-e2e-admin"
OPERATOR = {"Authorization": f"Bearer {ADMIN}"}
AUTH = {"Authorization": "Bearer mtproto-e2e-demo-key"}  # a key of workspace demo
API_HASH = "fedcba9876543210fedcba9876543210"
TTL = 4.0  # the lease TTL the gateways enforce (the bucket's own TTL stays 30 s)
CONTROL = "/_sandbox/mtproto"


@dataclass
class Gateways:
    sandbox: str
    procs: list[ServiceProcess]
    http: httpx.AsyncClient

    async def ownership(self, proc: ServiceProcess) -> dict[str, Any]:
        r = await self.http.get(f"{proc.url}/v1/ownership", headers=OPERATOR)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    async def connections(self) -> dict[str, Any]:
        r = await self.http.get(f"{self.sandbox}{CONTROL}/connections")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    async def take_overs(self, procs: list[ServiceProcess]) -> float:
        """How many leases these instances took over because they had expired (their
        ``switchboard_mtproto_lease_events_total{event="take_over"}``)."""
        total = 0.0
        for proc in procs:
            r = await self.http.get(f"{proc.url}/metrics", headers=OPERATOR)
            r.raise_for_status()
            for family in text_string_to_metric_families(r.text):
                if family.name == "switchboard_mtproto_lease_events":
                    total += sum(
                        s.value
                        for s in family.samples
                        if s.name.endswith("_total") and s.labels.get("event") == "take_over"
                    )
        return total

    async def taken_over(
        self, victims: set[str], killed_at: float, survivors: list[ServiceProcess], before: float
    ) -> float:
        """Waits until the sessions of ``victims`` (key ids), whose instance was killed at
        ``killed_at``, are connected again and all 30 are; returns how long that took (a
        number to print). What is asserted is how they moved: the ``survivors`` (whose
        take-overs were ``before``) took each over by the lease's TTL (``take_over``, an
        expired lease they watched), not after the bucket's 30 s TTL removed the key (a
        plain ``claim``), and not by anything else; a clock would say the same only on a
        quiet machine."""

        async def connected() -> bool:
            log = await self.connections()
            active = {k["key_id"] for k in log["keys"] if k["active"]}
            return victims <= active and int(log["active"]) == 30

        await eventually(connected, timeout=TTL + 60, interval=0.1, message="sessions taken over")
        took = time.monotonic() - killed_at
        moved = await self.take_overs(survivors) - before
        assert moved >= len(victims), f"{moved:.0f} of {len(victims)} leases taken over"
        return took

    async def thirty_users(self, phone_prefix: str, name_prefix: str) -> list[Any]:
        """Thirty users on the fake, each with one session (numbered phones and names)."""
        users = [
            {"phone": f"{phone_prefix}{i:04d}", "first_name": f"{name_prefix}{i}", "sessions": 1}
            for i in range(30)
        ]
        made: list[Any] = (await self.control("/users/bulk", {"users": users}))["users"]
        return made

    async def control(self, path: str, body: dict[str, Any]) -> Any:
        r = await self.http.post(f"{self.sandbox}{CONTROL}{path}", json=body)
        assert r.status_code < 300, r.text
        return r.json()


@contextmanager
def _sandbox() -> Iterator[str]:
    # Its own thread and loop: the fake keeps answering while the test reads streams.
    with serve_in_thread(Sandbox().app()) as url:
        yield url


@pytest.fixture
async def gateways(nats_url: str, postgres_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    with ExitStack() as stack:
        sandbox = stack.enter_context(_sandbox())
        bus = await Bus.connect(nats_url, name="e2e-setup")
        await bus.provision()
        await bus.close()

        async def launch(count: int, **extra: str) -> Gateways:
            procs = []
            for i in range(count):
                port = free_port()
                env = {
                    "SWITCHBOARD_NATS_URL": nats_url,
                    "SWITCHBOARD_DATABASE_URL": postgres_url,
                    "SWITCHBOARD_ENCRYPTION_KEYS": KEY,
                    "SWITCHBOARD_ADMIN_TOKEN": ADMIN,
                    "SWITCHBOARD_API_KEYS": "mtproto-e2e-demo-key=demo",
                    "SWITCHBOARD_SANDBOX_URL": sandbox,
                    "SWITCHBOARD_LOG_JSON": "true",
                    "SWITCHBOARD_INSTANCE_ID": f"gw{i}",
                    "SWITCHBOARD_MTPROTO_HTTP_PORT": str(port),
                    "SWITCHBOARD_MTPROTO_ADAPTER": "sandbox",
                    "SWITCHBOARD_MTPROTO_LEASE_TTL_S": str(TTL),
                    "SWITCHBOARD_MTPROTO_TICK_S": "0.5",
                    "SWITCHBOARD_MTPROTO_RECONNECT_INITIAL_S": "0.2",
                    "SWITCHBOARD_MTPROTO_RECONNECT_MAX_S": "2",
                    **extra,
                }
                procs.append(
                    ServiceProcess(
                        "switchboard.mtproto", env, tmp_path / f"mtproto{i}.log", port=port
                    ).start()
                )
            for proc in procs:
                await proc.ready(timeout=60)
            gw = Gateways(sandbox, procs, http)
            launched.append(gw)
            return gw

        launched: list[Gateways] = []
        async with httpx.AsyncClient(timeout=30) as http:
            try:
                yield launch
            finally:
                for gw in launched:
                    for proc in gw.procs:
                        proc.stop(timeout=20)


async def _import(gw: Gateways, base: str, session_id: str, session: str) -> None:
    r = await gw.http.put(
        f"{base}/v1/sessions/{session_id}",
        headers=AUTH,
        json={"session": session, "api_id": 1, "api_hash": API_HASH, "workspace_id": "demo"},
    )
    assert r.status_code == 201, r.text


async def test_sigkill_moves_sessions_by_their_leases_and_never_connects_one_twice(
    gateways: Any, nats_url: str, postgres_url: str
) -> None:
    gw: Gateways = await gateways(3)
    users = await gw.thirty_users("+1555700", "U")
    sessions = {f"s{i}": u["sessions"][0] for i, u in enumerate(users)}
    for sid, s in sessions.items():
        await _import(gw, gw.procs[0].url, sid, s["session"])

    async def all_connected() -> bool:
        log = await gw.connections()
        return int(log["active"]) == 30

    await eventually(all_connected, timeout=60, interval=0.25, message="30 sessions connected")

    async def spread() -> list[list[str]]:
        owned = [(await gw.ownership(p))["connected"] for p in gw.procs]
        return owned if all(owned) and sum(map(len, owned)) == 30 else []

    owned = await eventually(spread, timeout=30, interval=0.25, message="sessions spread")
    assert max(map(len, owned)) <= 11, [len(o) for o in owned]

    async def probed() -> dict[str, Any] | None:
        """Each instance reports the sessions it owns, each connected and probed (get_me)."""
        found: dict[str, Any] = {}
        for proc in gw.procs:
            # /health/* names sessions: the operator token (no ops port here)
            report = (await gw.http.get(f"{proc.url}/health/integrations", headers=OPERATOR)).json()
            found.update(report["integrations"])
        ok = [e for e in found.values() if e["state"] == "connected" and e["probe"]["ok"]]
        return found if len(ok) == 30 else None

    health = await eventually(probed, timeout=30, interval=0.25, message="sessions probed")
    assert set(health) == {f"mtproto/{sid}" for sid in sessions}
    assert all(e["healthy"] and e["p95_latency_ms"] is not None for e in health.values())

    # A dump taken while the gateways run holds no session string, no app hash.
    dumps = await stream_dump(nats_url) + await postgres_dump(postgres_url)
    assert "mtproto.session.s0" in dumps  # the dump really covers the leases
    for s in sessions.values():
        assert s["session"] not in dumps
    assert API_HASH not in dumps

    victims = {sessions[sid]["key_id"] for sid in owned[0]}
    before = await gw.take_overs(gw.procs[1:])
    gw.procs[0].kill()
    killed_at = time.monotonic()

    await gw.taken_over(victims, killed_at, gw.procs[1:], before)

    log = await gw.connections()
    assert log["duplicates"] in ([], 0), log["duplicates"]
    assert int(log["max_concurrent"]) == 1
    assert all(int(k["max_concurrent"]) == 1 for k in log["keys"])

    # The sandbox sees a connection a moment before its gateway counts it as connected.
    async def all_connected() -> list[list[str]] | None:
        survivors = [(await gw.ownership(p))["connected"] for p in gw.procs[1:]]
        return survivors if sum(map(len, survivors)) == 30 else None

    survivors = await eventually(all_connected, message="the survivors report all 30")

    # A graceful stop hands the leases back at once: no waiting for them to expire.
    leaving = {sessions[sid]["key_id"] for sid in survivors[0]}
    assert gw.procs[1].stop(timeout=30) == 0
    # Given back, not left to expire: the moment the process has exited, none of its sessions'
    # lease keys still names it (deleted, or already claimed by another instance). Checked on
    # the keys themselves rather than on a clock, so a loaded machine cannot fail it.
    assert not await _leases_held_by(nats_url, survivors[0], "gw1-")

    async def handed_over() -> bool:
        log = await gw.connections()
        active = {k["key_id"] for k in log["keys"] if k["active"]}
        return leaving <= active

    await eventually(handed_over, timeout=TTL + 30, interval=0.1, message="handed over")
    log = await gw.connections()
    assert log["duplicates"] in ([], 0)
    assert int(log["max_concurrent"]) == 1


async def _leases_held_by(nats_url: str, sessions: list[str], owner_prefix: str) -> list[str]:
    """The sessions whose lease key still names an owner starting with ``owner_prefix``."""
    bus = await Bus.connect(nats_url, name="e2e-leases")
    try:
        kv = await bus.kv("leases")
        held = []
        for sid in sessions:
            try:
                entry = await kv.get(f"mtproto.session.{sid}")
            except Exception:
                continue
            if entry.value and json.loads(entry.value)["owner"].startswith(owner_prefix):
                held.append(sid)
        return held
    finally:
        await bus.close()


async def _conv_ids(nats_url: str, session_id: str) -> list[str]:
    bus = await Bus.connect(nats_url, name="e2e-reader")
    try:
        subject = f"conv.message_received.v1.mtproto.{session_id}"
        sub = await bus.js.pull_subscribe(
            subject,
            durable=None,
            stream="CONV",
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                filter_subject=subject,
            ),
        )
        pending = (await sub.consumer_info()).num_pending
        ids: list[str] = []
        while len(ids) < pending:
            try:
                msgs = await sub.fetch(min(2000, pending - len(ids)), timeout=5)
            except (NatsTimeout, TimeoutError):
                break
            ids += [json.loads(m.data)["provider"]["message_id"] for m in msgs]
        await sub.unsubscribe()
        return ids
    finally:
        await bus.close()


async def test_backfill_of_20k_with_flood_waits_survives_a_kill_exactly_once(
    gateways: Any, nats_url: str
) -> None:
    gw: Gateways = await gateways(2, SWITCHBOARD_MTPROTO_FLOOD_HOLD_MAX_S="2")
    made = await gw.control("/users", {"phone": "+15558000001", "first_name": "Archivist",
                                       "sessions": 1})  # fmt: skip
    user_id = made["user"]["id"]
    await gw.control("/channels", {"title": "Archive", "username": "archive_chan",
                                   "creator": user_id})  # fmt: skip
    seeded = await gw.control("/messages/bulk", {"peer": "@archive_chan", "count": 20_000})
    assert seeded["count"] == 20_000
    # Every 100th history call: FLOOD_WAIT_1, waited out while holding the lease. The first
    # call: FLOOD_WAIT_3, longer than the 2 s the gateway holds: deferred, then resumed.
    await gw.control("/faults", {"method": "messages.getHistory", "error": "FLOOD_WAIT",
                                 "seconds": 1, "every": 100})  # fmt: skip
    await gw.control("/faults", {"method": "messages.getHistory", "error": "FLOOD_WAIT",
                                 "seconds": 3, "times": 1})  # fmt: skip
    await _import(gw, gw.procs[0].url, "archivist", made["sessions"][0]["session"])

    async def holder() -> ServiceProcess | None:
        for proc in gw.procs:
            if "archivist" in (await gw.ownership(proc))["connected"]:
                return proc
        return None

    await eventually(holder, timeout=30, interval=0.2, message="archivist connected")
    r = await gw.http.post(
        f"{gw.procs[1].url}/v1/sessions/archivist/backfills",
        headers=AUTH,
        json={"peer": "@archive_chan", "job_id": "archive-all"},
    )
    assert r.status_code == 202, r.text
    status_url = f"{gw.procs[1].url}/v1/sessions/archivist/backfills/archive-all"

    async def progressed(at_least: int) -> dict[str, Any] | None:
        job: dict[str, Any] = (await gw.http.get(status_url, headers=AUTH)).json()
        return job if job["fetched"] >= at_least else None

    await eventually(lambda: progressed(6000), timeout=90, interval=0.2, message="6k done")
    running = await holder()
    assert running is not None
    running.kill()  # mid-backfill, a page possibly published but not checkpointed
    alive = next(p for p in gw.procs if p is not running)
    status_url = status_url.replace(gw.procs[1].url, alive.url)

    async def completed() -> dict[str, Any] | None:
        job: dict[str, Any] = (await gw.http.get(status_url, headers=AUTH)).json()
        return job if job["status"] == "completed" else None

    job = await eventually(completed, timeout=180, interval=0.5, message="backfill completed")
    assert job["fetched"] == 20_000
    ids = await _conv_ids(nats_url, "archivist")
    assert len(ids) == 20_000  # nothing published twice
    assert len(set(ids)) == 20_000  # and every message once
    stats = (await gw.http.get(f"{gw.sandbox}{CONTROL}/stats")).json()
    assert stats["flood_violations"] in (0, [], {}), stats


CHANNELS = 6  # five of the 30 sessions read each
POSTS = 20  # per channel, a third before the kill and the rest after


async def test_sigkill_while_channels_post_publishes_every_post_once(
    gateways: Any, nats_url: str
) -> None:
    """The production Telethon adapter on the wire-level fake: three instances read 30
    sessions' channels; the one owning the most is SIGKILLed while the channels post. Its
    sessions are taken over by the lease's TTL with no auth key ever connected
    twice, and every post reaches CONV exactly once per reading session (live, from the
    difference since the stored update state, or from history)."""
    gw: Gateways = await gateways(3)
    made = await gw.thirty_users("+1555710", "R")
    channel_of = {f"r{i}": f"chaos_c{i % CHANNELS}" for i in range(30)}
    for k in range(CHANNELS):
        members = [u["user"]["id"] for i, u in enumerate(made) if i % CHANNELS == k]
        await gw.control("/channels", {"title": f"Chaos {k}", "username": f"chaos_c{k}",
                                       "members": members})  # fmt: skip
    sessions = {f"r{i}": u["sessions"][0] for i, u in enumerate(made)}
    for sid, s in sessions.items():
        await _import(gw, gw.procs[0].url, sid, s["session"])

    async def all_connected() -> bool:
        return int((await gw.connections())["active"]) == 30

    await eventually(all_connected, timeout=90, interval=0.25, message="30 sessions connected")
    for sid, channel in channel_of.items():
        r = await gw.http.post(
            f"{gw.procs[0].url}/v1/sessions/{sid}/subscriptions",
            headers=AUTH,
            json={"peer": f"@{channel}"},
        )
        assert r.status_code == 201, r.text

    posted: dict[str, list[int]] = {f"chaos_c{k}": [] for k in range(CHANNELS)}

    async def post_round(n: int) -> None:
        for channel, ids in posted.items():
            message = await gw.control("/messages", {"peer": f"@{channel}", "text": f"p{n}"})
            ids.append(int(message["id"]))

    for n in range(POSTS // 3):
        await post_round(n)

    async def owned() -> list[list[str]]:
        lists = [(await gw.ownership(p))["connected"] for p in gw.procs]
        return lists if sum(map(len, lists)) == 30 else []

    ownership = await eventually(owned, timeout=30, interval=0.25, message="ownership known")
    victim = max(range(3), key=lambda i: len(ownership[i]))
    victims = {sessions[sid]["key_id"] for sid in ownership[victim]}
    assert victims
    survivors = [p for i, p in enumerate(gw.procs) if i != victim]
    before = await gw.take_overs(survivors)
    gw.procs[victim].kill()
    killed_at = time.monotonic()
    for n in range(POSTS // 3, POSTS):  # the channels go on posting meanwhile
        await post_round(n)

    took = await gw.taken_over(victims, killed_at, survivors, before)

    async def everything_published() -> dict[str, list[str]] | None:
        found = {sid: await _conv_ids(nats_url, sid) for sid in sessions}
        complete = all(len(set(ids)) >= POSTS for ids in found.values())
        return found if complete else None

    found = await eventually(
        everything_published, timeout=90, interval=0.5, message="every post published"
    )
    for sid, ids in found.items():
        expected = sorted(str(i) for i in posted[channel_of[sid]])
        assert sorted(ids) == expected, (sid, sorted(ids), expected)  # each exactly once
    log = await gw.connections()
    assert log["duplicates"] in ([], 0), log["duplicates"]
    assert all(int(k["max_concurrent"]) == 1 for k in log["keys"])
    print(
        f"mtproto chaos: sessions=30 killed_owned={len(victims)} take_over_s={took:.1f} "
        f"ttl_s={TTL} posts={POSTS * CHANNELS} auth_key_duplicated=0 published_twice=0"
    )
