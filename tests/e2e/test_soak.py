"""Soak: sustained mixed traffic through every service running as a process (webhooks in,
CRM projection and API reads, replies out) while each process's memory is sampled.

After warm-up, no process's resident memory may trend upwards by more than 10%: leaks were
a known failure of the systems this replaces. The default run is short (CI); ``just soak``
runs ten minutes (``SOAK_SECONDS=600``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests.support.outbound import text_send
from tests.support.stack import API_KEY, register_bot, service_env

from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import free_port
from switchboard.runtime.testing import ServiceProcess, eventually
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SECONDS = float(os.environ.get("SOAK_SECONDS", "40"))
WARMUP = 0.4  # the first 40% of samples: caches fill, pools and JIT-ish paths settle
GROWTH = 0.10
ADMIN = "soak-admin-token-1"
TOKEN = "300000055:soak-bot-token-abcdefghij"
SERVICES = ("ingest", "crm", "outbound", "mtproto", "analytics")
MT = "/_sandbox/mtproto"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Samples:
    series: dict[str, list[int]] = field(default_factory=dict)

    def take(self, procs: dict[str, ServiceProcess]) -> None:
        for name, p in procs.items():
            assert p.proc is not None
            assert p.proc.poll() is None, f"{name} died:\n{p.tail()}"
            self.series.setdefault(name, []).append(rss_kib(p.proc.pid))

    def growth(self, name: str) -> float:
        """Median RSS of the last third over the median of the post-warm-up first third."""
        values = self.series[name]
        steady = values[int(len(values) * WARMUP) :]
        third = max(1, len(steady) // 3)
        return statistics.median(steady[-third:]) / statistics.median(steady[:third]) - 1


@pytest.mark.timeout(int(SECONDS) + 300)
async def test_memory_stays_flat_under_sustained_mixed_traffic(
    nats_url: str, postgres_url: str, tmp_path: Path
) -> None:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "soak_bot")
    async with serve(box.app()) as sandbox:
        ports = {name: free_port() for name in SERVICES}
        env = service_env(
            nats_url,
            postgres_url,
            SWITCHBOARD_ADMIN_TOKEN=ADMIN,
            SWITCHBOARD_INGEST_PUBLIC_URL=f"http://127.0.0.1:{ports['ingest']}",
            SWITCHBOARD_INGEST_TELEGRAM_API_URL=f"{sandbox}/telegram",
            SWITCHBOARD_MTPROTO_ADAPTER="sandbox",
            SWITCHBOARD_SANDBOX_URL=sandbox,
        )
        procs = {
            name: ServiceProcess(
                f"switchboard.{name}",
                {**env, "SWITCHBOARD_HTTP_PORT": str(port)},
                tmp_path / f"{name}.log",
                port=port,
            ).start()
            for name, port in ports.items()
        }
        samples = Samples()
        try:
            for p in procs.values():
                await p.ready(60)
            async with httpx.AsyncClient(timeout=10) as http:
                await register_bot(http, procs["ingest"].url, ADMIN, "shop", TOKEN, sandbox)
                stop = asyncio.Event()
                inbound = asyncio.create_task(
                    box.telegram.generate(TOKEN, duration=SECONDS, rate=40, seed=9, users=400)
                )
                await _reader_session(http, sandbox, procs["mtproto"].url)
                tasks = [
                    asyncio.create_task(_replies(nats_url, stop)),
                    asyncio.create_task(_reads(http, procs["crm"].url, stop)),
                    asyncio.create_task(_reads(http, procs["analytics"].url, stop, ANALYTICS)),
                    asyncio.create_task(_channel_posts(http, sandbox, stop)),
                ]
                deadline = time.monotonic() + SECONDS
                while time.monotonic() < deadline:
                    samples.take(procs)
                    await asyncio.sleep(min(2.0, SECONDS / 30))
                stop.set()
                generated = await inbound
                await asyncio.gather(*tasks)
                await box.telegram.wait_delivered(TOKEN, timeout=60)

                async def all_projected() -> bool:
                    r = await http.get(
                        f"{procs['crm'].url}/v1/conversations",
                        params={"limit": 1},
                        headers={"Authorization": f"Bearer {API_KEY}"},
                    )
                    return r.status_code == 200 and bool(r.json()["items"])

                await eventually(all_projected, timeout=30, message="traffic reached the CRM")
            assert len(generated) >= SECONDS * 20, "the load was sustained"
        finally:
            for p in procs.values():
                p.stop()
    report = {
        name: f"{values[0] // 1024}->{values[-1] // 1024} MiB, trend {samples.growth(name):+.1%}"
        for name, values in samples.series.items()
    }
    print(f"soak {SECONDS:.0f}s memory: {report}")
    for name in samples.series:
        assert samples.growth(name) <= GROWTH, f"{name} memory grows: {report[name]}"


async def _replies(nats_url: str, stop: asyncio.Event) -> None:
    """Replies at a steady pace, across many chats, through the outbound service."""
    bus = await Bus.connect(nats_url, name="soak-replies")
    i = 0
    try:
        while not stop.is_set():
            i += 1
            await bus.publish(
                text_send(f"soak-{i}", str(10_000 + i % 300), f"reply {i}"),
                workspace_id="demo",
            )
            await asyncio.sleep(0.1)
    finally:
        await bus.close()


CRM = ("/v1/conversations", "/v1/messages/search?text=hello", "/v1/leads", "/v1/contacts")
ANALYTICS = ("/v1/messages", "/v1/deliveries", "/v1/latency", "/v1/funnel", "/")


async def _reads(
    http: httpx.AsyncClient, base: str, stop: asyncio.Event, paths: tuple[str, ...] = CRM
) -> None:
    """An operator's screens (inbox, search, leads; the dashboard), refreshed continuously."""
    auth = {"Authorization": f"Bearer {API_KEY}"}
    i = 0
    while not stop.is_set():
        r = await http.get(base + paths[i % len(paths)], headers=auth)
        assert r.status_code == 200, r.text
        i += 1
        await asyncio.sleep(0.05)


async def _reader_session(http: httpx.AsyncClient, sandbox: str, mtproto: str) -> None:
    """A Telegram user account (MTProto) that reads a channel, as a live session."""
    for user in (
        {"phone": "+15550009998", "first_name": "Editor", "username": "soak_editor"},
        {"phone": "+15550009999", "first_name": "Reader", "username": "soak_reader", "sessions": 1},
    ):
        r = await http.post(f"{sandbox}{MT}/users", json=user)
        assert r.status_code < 300, r.text
    session = r.json()["sessions"][0]["session"]
    r = await http.post(
        f"{sandbox}{MT}/channels",
        json={"title": "News", "username": "soak_news", "creator": "@soak_editor",
              "members": ["@soak_reader"]},
    )  # fmt: skip
    assert r.status_code < 300, r.text
    admin = {"Authorization": f"Bearer {API_KEY}"}  # workspace demo's key: its sessions
    r = await http.put(
        f"{mtproto}/v1/sessions/reader",
        headers=admin,
        json={"session": session, "api_id": 1, "api_hash": "0" * 32, "workspace_id": "demo"},
    )
    assert r.status_code == 201, r.text

    async def subscribed() -> bool:
        r = await http.post(
            f"{mtproto}/v1/sessions/reader/subscriptions",
            headers=admin,
            json={"peer": "@soak_news"},
        )
        return r.status_code < 300

    await eventually(subscribed, timeout=30, message="the reader subscribed to the channel")


async def _channel_posts(http: httpx.AsyncClient, sandbox: str, stop: asyncio.Event) -> None:
    """The channel posts steadily; the reader's session turns each post into an event."""
    i = 0
    while not stop.is_set():
        i += 1
        r = await http.post(
            f"{sandbox}{MT}/messages",
            json={"peer": "@soak_news", "from": "@soak_editor", "text": f"post {i}"},
        )
        assert r.status_code < 300, r.text
        await asyncio.sleep(0.2)
