"""Chaos: the node leading RAW in a 3-node JetStream cluster is killed and restarted while
Telegram keeps delivering webhooks to two ingest instances and two CRM instances project them.

Invariants: every update Telegram got a 200 for is in ``CONV`` exactly once and in the CRM
exactly once; nothing Telegram was told is stored is lost, whatever node died.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from tests.support.cluster import NatsCluster
from tests.support.stack import add_telegram_account, service_env, webhook_secret
from tests.support.streams import stream_messages

from switchboard.runtime.testing import ServiceProcess, eventually
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BOTS = {"shop-a": "300000001:chaos-a", "shop-b": "300000002:chaos-b"}
# `just chaos` runs the long version: more traffic and a kill in every round.
PER_BOT = int(os.environ.get("CHAOS_PER_BOT", "150"))


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    nats = NatsCluster(tmp_path / "nats").start()
    try:
        await nats.wait_ready()
        yield nats
    finally:
        nats.stop()


def _process(module: str, name: str, tmp: Path, env: dict[str, str]) -> ServiceProcess:
    from switchboard.runtime.embedded import free_port

    port = free_port()
    return ServiceProcess(
        module, {**env, "SWITCHBOARD_HTTP_PORT": str(port)}, tmp / f"{name}.log", port=port
    )


@pytest.mark.timeout(600)
async def test_a_nats_node_dies_under_traffic_and_nothing_is_lost_or_doubled(
    cluster: NatsCluster, postgres_url: str, tmp_path: Path
) -> None:
    env = service_env(cluster.url, postgres_url, SWITCHBOARD_STREAM_REPLICAS=3)
    ingests = [_process("switchboard.ingest", f"ingest{i}", tmp_path, env) for i in range(2)]
    crms = [_process("switchboard.crm", f"crm{i}", tmp_path, env) for i in range(2)]
    procs = ingests + crms
    box = Sandbox(SandboxConfig())
    try:
        for p in procs:
            p.start()
        for p in procs:
            await p.ready(60)
        async with serve(box.app()):
            for (account, token), ingest in zip(BOTS.items(), ingests, strict=True):
                box.telegram.add_bot(token, account)
                await add_telegram_account(cluster.url, account, secret=f"secret-{account}")
                box.telegram.set_webhook(
                    token,
                    f"{ingest.url}/webhooks/telegram/{account}",
                    secret_token=await webhook_secret(cluster.url, account),
                )
            await cluster.wait_streams_current()

            traffic = [
                asyncio.create_task(
                    box.telegram.generate(token, count=PER_BOT, rate=60, seed=i, mix={"text": 1})
                )
                for i, token in enumerate(BOTS.values())
            ]

            async def some_delivered() -> bool:
                return len(box.recorder.deliveries(provider="telegram")) >= PER_BOT // 2

            await eventually(some_delivered, timeout=30, message="traffic under way")
            # the node leading RAW (asked of the cluster, not a fixed one): its death makes
            # the ingest's publishes wait for an election, the hardest case for the acks
            victim = await cluster.kill_leader("RAW")
            # The rest of the traffic arrives while the node is dead: two of three replicas
            # still form a quorum, so ingest keeps answering 200 only after durable acks.
            await asyncio.gather(*traffic)
            cluster.restart(victim)
            await cluster.wait_ready()
            for token in BOTS.values():
                await box.telegram.wait_delivered(token, timeout=120)

            expected = {(g.bot_id, g.update["update_id"]) for g in box.telegram.generated_updates()}
            assert len(expected) == PER_BOT * len(BOTS)

            async def conv_complete() -> bool:
                return len(await stream_messages(cluster.url, "CONV")) >= len(expected)

            await eventually(conv_complete, timeout=60, message="every update normalized")
            conv = await stream_messages(cluster.url, "CONV")
            ids = [d.envelope.id for d in conv]
            assert len(ids) == len(set(ids)) == len(expected), "CONV holds each update once"

            async def crm_complete() -> bool:
                conn = await asyncpg.connect(postgres_url)
                try:
                    n = await conn.fetchval("SELECT count(*) FROM crm.messages")
                finally:
                    await conn.close()
                return int(n) >= len(expected)

            await eventually(crm_complete, timeout=60, message="every message in the CRM")
            conn = await asyncpg.connect(postgres_url)
            try:
                rows = await conn.fetchval("SELECT count(*) FROM crm.messages")
                distinct = await conn.fetchval(
                    "SELECT count(DISTINCT (conversation_id, provider_message_id))"
                    " FROM crm.messages"
                )
            finally:
                await conn.close()
            assert rows == distinct == len(expected), "the CRM holds each message once"
            print(
                f"chaos nats: node n{victim} killed under traffic; webhooks={len(expected)} "
                "each once in CONV and the CRM"
            )
            await cluster.wait_streams_current()
    finally:
        for p in procs:
            p.stop()
