"""`uv run python bench/bench_fsync.py`: what JetStream's ``sync_interval: always`` costs.

Two embedded nats-servers in this run, on the same disk, one with the default fsync policy
(flush to the OS at once, fsync every 2 minutes) and one with ``sync_interval: always``
(fsync before each acknowledgement). Each gets the same publish load: ``BENCH_WINDOW``
publishes in flight waiting for their acks, ``BENCH_SIZE``-byte messages, on a file-stored
stream with duplicate detection (like RAW). Prints, last:
``fsync_default_msgs_s=<a> fsync_always_msgs_s=<b> fsync_ratio=<b/a>``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import nats
from nats.js.api import StorageType, StreamConfig

from switchboard.runtime.embedded import EmbeddedNats

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
WINDOW = int(os.environ.get("BENCH_WINDOW", "64"))
SIZE = int(os.environ.get("BENCH_SIZE", "1024"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


async def publish_rate(url: str, label: str) -> tuple[float, float]:
    """(acked publishes/s, median ack latency in ms) over SECONDS with WINDOW in flight."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    stream = f"FSYNC_{label}"
    await js.add_stream(
        StreamConfig(name=stream, subjects=[f"fsync.{label}.>"], storage=StorageType.FILE)
    )
    body = os.urandom(SIZE // 2).hex().encode()[:SIZE]
    latencies: list[float] = []
    count = 0
    deadline = time.perf_counter() + SECONDS

    async def worker(w: int) -> None:
        nonlocal count
        i = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await js.publish(
                f"fsync.{label}.x", body, headers={"Nats-Msg-Id": f"{w}-{i}"}, timeout=30
            )
            latencies.append(time.perf_counter() - started)
            count += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(WINDOW)))
    elapsed = time.perf_counter() - started
    await js.delete_stream(stream)
    await nc.close()
    return count / elapsed, statistics.median(latencies) * 1000


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-fsync-") as tmp:
        default = EmbeddedNats(Path(tmp) / "default").start()
        always = EmbeddedNats(Path(tmp) / "always", sync_interval="always").start()
        try:
            rates: dict[str, list[float]] = {"default": [], "always": []}
            p50: dict[str, list[float]] = {"default": [], "always": []}
            # interleaved rounds, so a burst of other load on the machine hits both alike
            for r in range(ROUNDS):
                for label, server in (("default", default), ("always", always)):
                    rate, median = await publish_rate(server.url, f"{label}{r}")
                    rates[label].append(rate)
                    p50[label].append(median)
                    print(f"round {r} {label:8} {rate:9.0f} msgs/s  p50 {median:6.2f} ms")
        finally:
            default.stop()
            always.stop()
    a, b = statistics.median(rates["default"]), statistics.median(rates["always"])
    print(
        f"window={WINDOW} size={SIZE}B seconds={SECONDS} rounds={ROUNDS} "
        f"p50_default_ms={statistics.median(p50['default']):.2f} "
        f"p50_always_ms={statistics.median(p50['always']):.2f}"
    )
    print(f"fsync_default_msgs_s={a:.0f} fsync_always_msgs_s={b:.0f} fsync_ratio={b / a:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
