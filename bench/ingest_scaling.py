"""Ingest at 1, 2 and 3 instances (`BENCH_GROWTH_INGEST_INSTANCES`), each with its
normalizer, on one fresh NATS per count: verified webhooks/s in a closed loop
(`BENCH_GROWTH_INGEST_SECONDS`, 64 connections shared among the instances, one load
generator process per instance), how long the normalizers then take to catch up, and the
CPU milliseconds per webhook of every process from the first request until everything is
normalized, so a reader can predict the cores a load needs. Run by bench_growth.py, or
alone: `python bench/ingest_scaling.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from accounts import new_keys
from bench_ingest import SECRET, normalized, setup, wait_ready
from bench_outbound import cpu_seconds
from processes import stop
from switchboard.runtime.embedded import EmbeddedNats, free_port

HERE = Path(__file__).parent
SECONDS = float(os.environ.get("BENCH_GROWTH_INGEST_SECONDS", "8"))
COUNTS = [int(n) for n in os.environ.get("BENCH_GROWTH_INGEST_INSTANCES", "1,2,3").split(",")]
CONNS = 64


async def one(instances: int) -> str:
    """The line for ``instances`` ingest processes."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-scaling-"))
    nats = EmbeddedNats(tmp / "nats").start()
    keys = new_keys()
    await setup(nats.url, keys)
    ports = [free_port() for _ in range(instances)]
    procs = []
    try:
        for port in ports:
            env = {
                **os.environ, "SWITCHBOARD_NATS_URL": nats.url,
                "SWITCHBOARD_ENCRYPTION_KEYS": keys, "SWITCHBOARD_INGEST_HTTP_PORT": str(port),
                "SWITCHBOARD_LOG_LEVEL": "warning",
                "SWITCHBOARD_INGEST_INBOUND_RATE_PER_ACCOUNT": "1e9",
                "SWITCHBOARD_INGEST_INBOUND_BURST_PER_ACCOUNT": "1e9",
            }  # fmt: skip
            procs.append(subprocess.Popen([sys.executable, "-m", "switchboard.ingest"], env=env))
        for port, proc in zip(ports, procs, strict=True):
            wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        assert nats.proc is not None
        pids = {"nats": nats.proc.pid, **{f"ingest{i}": p.pid for i, p in enumerate(procs)}}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        header = f"X-Telegram-Bot-Api-Secret-Token: {SECRET}"
        loads = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "loadgen.py"),
                    "/webhooks/telegram/bench",
                    "127.0.0.1",
                    str(port),
                    "closed",
                    str(SECONDS),
                    str(CONNS // instances),
                    header,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for port in ports
        ]
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in loads]
        behind = await normalized(nats.url)
        done = sum(r["ok"] for r in results)
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        cpu = ", ".join(f"{name} {1000 * s / max(done, 1):.2f}" for name, s in used.items())
        rate = sum(r["rps"] for r in results)
        return (
            f"ingest x{instances}: {rate:,.0f} webhooks/s (non-200: "
            f"{sum(r['errors'] for r in results)}), normalized {behind:.1f} s after; "
            f"CPU ms per webhook: {cpu}"
        )
    finally:
        stop(procs)
        nats.stop()


async def ingest_scaling() -> list[str]:
    lines = []
    for n in COUNTS:
        lines.append(await one(n))
        print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    asyncio.run(ingest_scaling())
