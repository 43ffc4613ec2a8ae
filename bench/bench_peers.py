"""`just bench peers`: the same 3-process broadcast through Switchboard and through the
libraries a user would pick instead, on one sandbox in one run.

N messages (`BENCH_PEERS_MESSAGES`), each to its own private chat, from one bot, sent by 3
processes: (a) Switchboard's outbound, 3 instances; (b) python-telegram-bot with its
AIORateLimiter (peers/ptb_broadcast.py); (c) aiogram with the retry on TelegramRetryAfter
its broadcast example recommends (peers/aiogram_broadcast.py). The peers run in their own
virtual environment, made by this benchmark with `uv venv` in a temporary directory, so
they never enter the project's dependencies.

The sandbox runs with the flood penalty on (repeat offenders wait longer; unverified, see
docs/benchmarks.md), so a client cannot buy utilization with 429s. Each contender gets a
fresh bot and a reset limiter. Printed per contender: utilization of the permitted rate
(accepted sends/s from the first to the last accepted, over 30/s), 429 answers, duplicates
(a chat that got its message twice), losses (messages never accepted), wall time (start to
the last outcome), and the sandbox's CPU per request.
Prints, last: `peers_switchboard_utilization=<x> peers_switchboard_429=<n>
peers_best_utilization=<y>` (the best peer that stayed at 0 429s; nan when none did).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import outbound_fleet as fleet
from accounts import new_keys, store_telegram
from bench_outbound import cpu_seconds
from processes import stop
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutText, SendMessage
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats, free_port

HERE = Path(__file__).parent
MESSAGES = int(os.environ.get("BENCH_PEERS_MESSAGES", "1800"))
PROCS = 3
PER_BOT = 30.0  # the sandbox's (and the Bot FAQ's) messages per second per bot
MAX_RETRIES = int(os.environ.get("BENCH_PEERS_RETRIES", "5"))
AIOGRAM_SPACING = os.environ.get("BENCH_PEERS_AIOGRAM_SPACING", "0.05")
# Every refusal of a key within 10 s of its first adds 0.25 s more to its wait, at most 10 s
# more: flooding costs more than it gains, and a run still ends in minutes.
PENALTY = json.loads(
    os.environ.get("BENCH_PEERS_PENALTY", '{"step": 0.25, "window": 10, "cap": 10}')
)
# a comma-separated subset of switchboard,ptb,aiogram (default: all three)
ONLY = set(filter(None, os.environ.get("BENCH_PEERS_ONLY", "").split(",")))
PEER_PACKAGES = ("python-telegram-bot[rate-limiter]>=21", "aiogram>=3.31")
TIMEOUT = float(os.environ.get("BENCH_PEERS_TIMEOUT", "900"))


@dataclass
class Outcome:
    name: str
    accepted: int
    limited: int
    duplicates: int
    losses: int
    utilization: float
    wall: float
    sandbox_cpu_ms: float

    def line(self) -> str:
        return (
            f"{self.name:<22} utilization {self.utilization:6.3f}  429s {self.limited:5d}  "
            f"duplicates {self.duplicates:4d}  losses {self.losses:4d}  wall {self.wall:6.1f} s  "
            f"sandbox CPU {self.sandbox_cpu_ms:.2f} ms/request"
        )


def utilization(stamps: list[float], per_second: float) -> float:
    """Accepted sends over the most a one-second sliding window of ``per_second`` admits
    between the first and the last of them, ``per_second * (T + 1)`` for a span of T
    seconds: a burst of 30 scores 1.0, not infinity (nan when nothing was accepted)."""
    if not stamps:
        return math.nan
    span = max(stamps) - min(stamps)
    return len(stamps) / (per_second * (span + 1.0))


def peers_venv(tmp: Path) -> Path:
    """A throwaway virtual environment with the peer libraries; its python."""
    venv = tmp / "peers-venv"
    subprocess.run(["uv", "venv", "-q", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(python), *PEER_PACKAGES], check=True
    )
    return python


async def fresh_bot(http: httpx.AsyncClient, sandbox: str, n: int) -> str:
    """A new bot for one contender, and the limiter reset with the penalty on."""
    token = f"{800000000 + n}:peers{n}"
    r = await http.post(
        f"{sandbox}/_sandbox/telegram/bots", json={"token": token, "username": f"peers{n}_bot"}
    )
    r.raise_for_status()
    r = await http.put(f"{sandbox}/_sandbox/telegram/limits", json={"penalty": PENALTY})
    r.raise_for_status()
    return token


async def mark(http: httpx.AsyncClient, sandbox: str) -> int:
    found = (await http.get(f"{sandbox}/_sandbox/requests", params={"limit": 1})).json()
    return max((r["seq"] for r in found["requests"]), default=0)


async def judge(
    http: httpx.AsyncClient,
    sandbox: str,
    name: str,
    after: int,
    first_chat: int,
    wall: float,
    sandbox_cpu: float,
) -> Outcome:
    """Read the sandbox's records of one contender's sends and score them."""
    records = (
        await http.get(
            f"{sandbox}/_sandbox/requests",
            params={
                "provider": "telegram",
                "method": "sendMessage",
                "after": after,
                "limit": MESSAGES * 50,
            },
        )
    ).json()["requests"]
    ok = [r for r in records if r["ok"]]
    stamps = sorted(r["at"] for r in ok)
    chats = Counter(int(r["chat"]) for r in ok)
    wanted = set(range(first_chat, first_chat + MESSAGES))
    return Outcome(
        name=name,
        accepted=len(ok),
        limited=sum(1 for r in records if r["status"] == 429),
        duplicates=sum(n - 1 for n in chats.values()),
        losses=len(wanted - set(chats)),
        utilization=utilization(stamps, PER_BOT),
        wall=wall,
        sandbox_cpu_ms=1000 * sandbox_cpu / max(len(records), 1),
    )


async def run_peer(
    tmp: Path,
    python: Path,
    script: str,
    sandbox: str,
    token: str,
    first_chat: int,
    extra: list[str],
) -> float:
    """Start the 3 processes of one peer library, wait for all; the wall time."""
    logs = [tmp / f"{script}.{i}.log" for i in range(PROCS)]
    start = time.perf_counter()
    procs = [
        await asyncio.create_subprocess_exec(
            str(python),
            str(HERE / "peers" / script),
            f"{sandbox}/telegram",
            token,
            str(first_chat),
            str(MESSAGES),
            str(i),
            str(PROCS),
            str(MAX_RETRIES),
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=logs[i].open("wb"),  # the libraries' tracebacks of given-up sends
        )
        for i in range(PROCS)
    ]
    outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), TIMEOUT)
    wall = time.perf_counter() - start
    for p, (out, _) in zip(procs, outs, strict=True):
        print(f"  {script} exit {p.returncode}: {out.decode().strip()}")
    print(f"  their stderr: {tmp}/{script}.*.log")
    return wall


async def run_switchboard(
    tmp: Path, nats: EmbeddedNats, sandbox: str, token: str, first_chat: int
) -> float:
    """3 outbound instances send the broadcast; the wall time to the last outcome event."""
    keys = new_keys()
    bus = await Bus.connect(nats.url, name="bench-peers")
    await bus.provision()
    await store_telegram(bus, keys, {"peers": {"token": token}}, sandbox)
    env = {
        **os.environ,
        "SWITCHBOARD_NATS_URL": nats.url,
        "SWITCHBOARD_ENCRYPTION_KEYS": keys,
        "SWITCHBOARD_API_KEYS": "bench-key-1=bench",
        "SWITCHBOARD_LOG_LEVEL": "warning",
    }
    procs = fleet.start_outbound(tmp, env, [free_port() for _ in range(PROCS)])
    outcomes = await fleet.Outcomes(MESSAGES).start(bus)
    try:
        start = time.perf_counter()
        await fleet.broadcast(
            bus,
            (
                SendMessage(
                    message_id=f"peers-{i}",
                    channel=Channel.TELEGRAM,
                    account="peers",
                    recipient=str(first_chat + i),
                    content=OutText(text=f"peer {i}"),
                )
                for i in range(MESSAGES)
            ),
        )
        await asyncio.wait_for(outcomes.done.wait(), TIMEOUT)
        return time.perf_counter() - start
    finally:
        await outcomes.stop()
        await bus.close()
        stop(procs)


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    t = time.perf_counter()
    python = peers_venv(tmp)
    print(f"peers' own venv ({', '.join(PEER_PACKAGES)}) in {time.perf_counter() - t:.1f} s")
    nats = EmbeddedNats(tmp / "nats").start()
    sandbox_proc, sandbox = fleet.start_sandbox(tmp)
    results: list[Outcome] = []
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            await fleet.sandbox_ready(http, sandbox, 300)
            contenders: list[tuple[str, str, Any]] = [
                ("switchboard", "switchboard outbound", None),
                ("ptb", "python-telegram-bot", ("ptb_broadcast.py", [])),
                ("aiogram", "aiogram", ("aiogram_broadcast.py", [AIOGRAM_SPACING])),
            ]
            for n, (key, name, peer) in enumerate(contenders):
                if ONLY and key not in ONLY:
                    continue
                token = await fresh_bot(http, sandbox, n)
                first_chat = 1_000_000 * (n + 1)
                after = await mark(http, sandbox)
                cpu_before = cpu_seconds(sandbox_proc.pid)
                print(f"== {name}: {MESSAGES} messages, {PROCS} processes", flush=True)
                if peer is None:
                    wall = await run_switchboard(tmp, nats, sandbox, token, first_chat)
                else:
                    script, extra = peer
                    wall = await run_peer(tmp, python, script, sandbox, token, first_chat, extra)
                cpu = cpu_seconds(sandbox_proc.pid) - cpu_before
                outcome = await judge(http, sandbox, name, after, first_chat, wall, cpu)
                print(outcome.line(), flush=True)
                results.append(outcome)
    finally:
        stop([sandbox_proc])
        nats.stop()
    print()
    print(f"{MESSAGES} messages to {MESSAGES} private chats, one bot (30/s), 3 processes each;")
    print(f"sandbox flood penalty {json.dumps(PENALTY)}")
    for outcome in results:
        print(outcome.line())
    ours = [o for o in results if o.name == "switchboard outbound"]
    peers = [o for o in results if o.name != "switchboard outbound"]
    clean = [o.utilization for o in peers if o.limited == 0 and o.losses == 0]
    best = max(clean) if clean else math.nan
    if ours:
        print(
            f"peers_switchboard_utilization={ours[0].utilization:.3f} "
            f"peers_switchboard_429={ours[0].limited} peers_best_utilization={best:.3f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
