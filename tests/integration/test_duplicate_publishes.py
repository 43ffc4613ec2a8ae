"""The same event published several times at once (a provider's retries racing each other
through two ingest instances, a flood of duplicate webhooks) on a replicated stream: a
clustered JetStream answers all but one with 409 "duplicate message id is in process"
while the first is being stored. Every publish must succeed, and the stream hold it once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.cluster import NatsCluster

from switchboard.runtime.bus import Bus


async def test_concurrent_publishes_of_one_id_all_succeed_and_store_it_once(
    tmp_path: Path,
) -> None:
    cluster = NatsCluster(tmp_path).start()
    try:
        await cluster.wait_ready()
        bus = await Bus.connect(cluster.url, name="test")
        try:
            await bus.provision(replicas=3)
            for n in range(30):
                acks = await asyncio.gather(
                    *(
                        bus.publish_raw("raw.telegram.shop", b"{}", {"Nats-Msg-Id": f"u-{n}"})
                        for _ in range(10)
                    )
                )
                assert len({a.seq for a in acks}) == 1  # one message, every caller told so
                assert sum(not a.duplicate for a in acks) <= 1
            info = await bus.js.stream_info("RAW")
            assert info.state.messages == 30
        finally:
            await bus.close()
    finally:
        cluster.stop()
