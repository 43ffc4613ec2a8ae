"""What the outbound benchmarks (bench_outbound, bench_peers) stand up the same way: the
sandbox and outbound instances as processes, and a broadcast published and counted by its
outcome events."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from switchboard.events.catalog.outbound import SendMessage
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import free_port


def start_sandbox(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The sandbox served by its own process on a free port (its log in ``tmp``); its URL."""
    port = free_port()
    proc = subprocess.Popen(
        # no access log: the fake provider's own logging is not what is measured
        [sys.executable, "-m", "switchboard.sandbox.cli", "serve", "--port", str(port),
         "--log-level", "warning"],
        stdout=(tmp / "sandbox.log").open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


async def sandbox_ready(http: httpx.AsyncClient, sandbox: str, tries: int) -> None:
    """Wait, up to ``tries`` tenths of a second, for the sandbox to answer its health check."""
    for _ in range(tries):
        try:
            if (await http.get(f"{sandbox}/_sandbox/health")).status_code == 200:
                return
        except httpx.HTTPError:
            await asyncio.sleep(0.1)


def start_outbound(
    tmp: Path, env: Mapping[str, str], ports: list[int]
) -> list[subprocess.Popen[bytes]]:
    """One outbound process per HTTP port, each logging to ``tmp/outbound<i>.log``."""
    return [
        subprocess.Popen(
            [sys.executable, "-m", "switchboard.outbound"],
            env={**env, "SWITCHBOARD_OUTBOUND_HTTP_PORT": str(port)},
            stdout=(tmp / f"outbound{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i, port in enumerate(ports)
    ]


class Outcomes:
    """Counts the delivery outcomes (sent or failed) on the bus until ``expected`` came.

    Counted from the delivery events, not by asking the sandbox: listing its records while
    it works would stall the very process whose timestamps are measured."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done = asyncio.Event()
        self._subs: list[Any] = []

    async def _one(self, _: Any) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.done.set()

    async def start(self, bus: Bus) -> Outcomes:
        self._subs = [
            await bus.nc.subscribe("delivery.sent.>", cb=self._one),
            await bus.nc.subscribe("delivery.failed.>", cb=self._one),
        ]
        return self

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()


async def broadcast(bus: Bus, commands: Iterable[SendMessage]) -> None:
    """Publish ``commands`` for workspace ``bench``, 500 in flight at a time."""
    pending = []
    for cmd in commands:
        pending.append(bus.publish(cmd, workspace_id="bench"))
        if len(pending) >= 500:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
