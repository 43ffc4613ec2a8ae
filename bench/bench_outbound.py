"""`just bench outbound`: 3 outbound processes (`BENCH_INSTANCES`), 10 sandbox Telegram
bots, a backlog of 10k messages to 5k chats, then a 10k-recipient campaign over the same
10 bots. Prints, last: `outbound_utilization=<x> outbound_429=<n> campaign_ratio=<y>`:
backlog messages accepted per second over the permitted aggregate rate (10 bots x 30/s),
the 429s the sandbox answered (both phases), and the campaign's time from publishing its
start command to its completion event over the theoretical minimum (10k / 300 per second).

Also printed: duplicates, CPU milliseconds per message of each process, slots the instances
gave up (a send that could not leave in time) and holds (a send the provider may have
counted late held the next window back). `BENCH_MESSAGES`, `BENCH_CHATS`, `BENCH_BOTS`,
`BENCH_RECIPIENTS` (0: no campaign), `BENCH_INSTANCES` (3) change the sizes;
`BENCH_DUMP=<file>` writes the sandbox's request records there (the campaign's to
`<file>.campaign`); `SWITCHBOARD_OUTBOUND_*`
settings reach the instances.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

import outbound_fleet as fleet
from accounts import new_keys, store_telegram
from processes import stop
from switchboard.events import decode_message
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import (
    AddCampaignRecipients,
    OutText,
    SendMessage,
    StartCampaign,
)
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats, free_port

BOTS = int(os.environ.get("BENCH_BOTS", "10"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
CHATS = int(os.environ.get("BENCH_CHATS", "5000"))
RECIPIENTS = int(os.environ.get("BENCH_RECIPIENTS", "10000"))
BATCH = 5000
INSTANCES = int(os.environ.get("BENCH_INSTANCES", "3"))
PER_BOT = 30.0
OPERATOR = "bench-operator-token"


async def metric_total(http: httpx.AsyncClient, ports: list[int], name: str) -> float:
    """A counter of the instances' /metrics, summed."""
    total = 0.0
    for port in ports:
        # /metrics answers the operator token only (no ops port here)
        ops = {"Authorization": f"Bearer {OPERATOR}"}
        text = (await http.get(f"http://127.0.0.1:{port}/metrics", headers=ops)).text
        for line in text.splitlines():
            if line.startswith(f"{name} "):
                total += float(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_report(pids: dict[str, int], before: dict[str, float], count: int) -> str:
    """CPU milliseconds per message of each process since ``before``."""
    used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    parts = [f"{name} {1000 * sec / max(count, 1):.2f}" for name, sec in used.items()]
    return "CPU ms per message: " + ", ".join(parts)


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-outbound-"))
    nats = EmbeddedNats(tmp / "nats").start()
    sandbox, sandbox_url = fleet.start_sandbox(tmp)
    keys = new_keys()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            await fleet.sandbox_ready(http, sandbox_url, 100)
            tokens = [f"{700000000 + b}:bench{b}" for b in range(BOTS)]
            for b, token in enumerate(tokens):
                r = await http.post(
                    f"{sandbox_url}/_sandbox/telegram/bots",
                    json={"token": token, "username": f"bench{b}_bot"},
                )
                r.raise_for_status()
            bus = await Bus.connect(nats.url, name="bench")
            await bus.provision()
            await store_telegram(
                bus,
                keys,
                {f"bot{b}": {"token": token} for b, token in enumerate(tokens)},
                sandbox_url,
            )
            env = {
                **os.environ,
                "SWITCHBOARD_NATS_URL": nats.url,
                "SWITCHBOARD_ENCRYPTION_KEYS": keys,
                "SWITCHBOARD_API_KEYS": "bench-key-1=bench",
                "SWITCHBOARD_ADMIN_TOKEN": OPERATOR,
                "SWITCHBOARD_LOG_LEVEL": "warning",
            }
            ports = [free_port() for _ in range(INSTANCES)]
            procs = fleet.start_outbound(tmp, env, ports)
            assert nats.proc is not None
            pids = {"nats": nats.proc.pid, "sandbox": sandbox.pid}
            pids.update({f"outbound{i}": p.pid for i, p in enumerate(procs)})
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            outcomes = await fleet.Outcomes(MESSAGES).start(bus)
            # the backlog: message i goes from bot i % BOTS to chat i % CHATS
            await fleet.broadcast(
                bus,
                (
                    SendMessage(
                        message_id=f"b-{i}",
                        channel=Channel.TELEGRAM,
                        account=f"bot{i % BOTS}",
                        recipient=str(100000 + i % CHATS),
                        content=OutText(text=f"broadcast {i}"),
                    )
                    for i in range(MESSAGES)
                ),
            )
            await asyncio.wait_for(outcomes.done.wait(), 600)
            backlog_cpu = cpu_report(pids, cpu_before, MESSAGES)
            await outcomes.stop()
            reqs = (
                await http.get(
                    f"{sandbox_url}/_sandbox/requests",
                    params={"provider": "telegram", "method": "sendMessage", "limit": MESSAGES * 2},
                )
            ).json()
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            campaign = await run_campaign(bus, http, sandbox_url, BOTS) if RECIPIENTS else None
            campaign_cpu = cpu_report(pids, cpu_before, RECIPIENTS)
            late = await metric_total(http, ports, "switchboard_outbound_late_slots_total")
            pushed = await metric_total(http, ports, "switchboard_outbound_late_sends_total")
            reports = await metric_total(http, ports, "switchboard_outbound_answer_reports_total")
            await bus.close()
        records = reqs["requests"]
        if dump := os.environ.get("BENCH_DUMP"):
            Path(dump).write_text(json.dumps(records))
            if campaign is not None:
                Path(f"{dump}.campaign").write_text(json.dumps(campaign["records"]))
        ok = sorted(r["at"] for r in records if r["ok"])
        texts = Counter((r["chat"], r["params"].get("text")) for r in records if r["ok"])
        dups = {t: n for t, n in texts.items() if n > 1}
        print(f"duplicates: {sum(n - 1 for n in dups.values())} (e.g. {list(dups.items())[:5]})")
        limited = sum(1 for r in records if r["status"] == 429)
        if limited and ok:
            buckets = Counter(
                int((r["at"] - ok[0]) // 5) * 5 for r in records if r["status"] == 429
            )
            print("429s by 5 s since the first send:", dict(sorted(buckets.items())))
        span = ok[-1] - ok[0] if len(ok) > 1 else float("nan")
        rate = (len(ok) - 1) / span if span else float("nan")
        permitted = BOTS * PER_BOT
        print(
            f"backlog: {len(ok)} accepted in {span:.1f} s = {rate:.1f}/s; permitted "
            f"{permitted:.0f}/s; theoretical minimum {MESSAGES / permitted:.1f} s; "
            f"429 answers: {limited}"
        )
        print(f"backlog {backlog_cpu}")
        ratio = float("nan")
        if campaign is not None:
            ratio = campaign["elapsed"] / (RECIPIENTS / permitted)
            limited += campaign["limited"]
            print(
                f"campaign: {campaign['completed']} in {campaign['elapsed']:.1f} s (first to last "
                f"send {campaign['span']:.1f} s, {campaign['accepted']} accepted, "
                f"{campaign['duplicates']} duplicates, {campaign['limited']} 429 answers, "
                f"{campaign['progress']} progress events); theoretical minimum "
                f"{RECIPIENTS / permitted:.1f} s"
            )
            print(f"campaign {campaign_cpu}")
        print(
            f"slots given up because a send would have left late: {late:.0f}; "
            f"next windows held back after a send that may have been counted late: {pushed:.0f}; "
            f"answers written by a report, not a lease: {reports:.0f}"
        )
        print(
            f"outbound_utilization={rate / permitted:.3f} outbound_429={limited} "
            f"campaign_ratio={ratio:.3f}"
        )
    finally:
        stop(procs)
        stop([sandbox])
        nats.stop()


async def run_campaign(
    bus: Bus, http: httpx.AsyncClient, sandbox_url: str, bots: int
) -> dict[str, Any]:
    """A RECIPIENTS-strong campaign over every bot; times start command -> completion event."""
    mark = (await http.get(f"{sandbox_url}/_sandbox/requests", params={"limit": 1})).json()
    after = max((r["seq"] for r in mark["requests"]), default=0)
    cid = "bench-campaign"
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    progress: list[Any] = []

    async def on_event(msg: Any) -> None:
        event = decode_message(msg.subject, dict(msg.headers or {}), msg.data).model
        if event.name == "delivery.campaign_progress":
            progress.append(event)
        elif not done.done():
            done.set_result(event)

    subs = [
        await bus.nc.subscribe(f"delivery.campaign_completed.v1.{cid}", cb=on_event),
        await bus.nc.subscribe(f"delivery.campaign_progress.v1.{cid}", cb=on_event),
    ]
    recipients = [str(200000 + i) for i in range(RECIPIENTS)]
    batches = [recipients[i : i + BATCH] for i in range(0, len(recipients), BATCH)]
    started = time.time()
    await bus.publish(
        StartCampaign(
            campaign_id=cid,
            channel=Channel.TELEGRAM,
            accounts=tuple(f"bot{b}" for b in range(bots)),
            content=OutText(text="campaign"),
            recipients=batches[0],
            final=len(batches) == 1,
            expected_total=RECIPIENTS,
        ),
        workspace_id="bench",
    )
    for n, rows in enumerate(batches[1:], start=1):
        await bus.publish(
            AddCampaignRecipients(
                campaign_id=cid,
                batch=n,
                recipients=rows,
                final=n == len(batches) - 1,
            ),
            workspace_id="bench",
        )
    completed = await asyncio.wait_for(done, 600)
    elapsed = time.time() - started
    for sub in subs:
        await sub.unsubscribe()
    records = (
        await http.get(
            f"{sandbox_url}/_sandbox/requests",
            params={"provider": "telegram", "after": after, "limit": RECIPIENTS * 2},
        )
    ).json()["requests"]
    ok = sorted(r["at"] for r in records if r["ok"])
    chats = Counter(r["chat"] for r in records if r["ok"])
    return {
        "elapsed": elapsed,
        "completed": f"{completed.outcome}: sent {completed.sent}, failed {completed.failed}",
        "accepted": len(ok),
        "span": ok[-1] - ok[0] if len(ok) > 1 else float("nan"),
        "duplicates": sum(n - 1 for n in chats.values()),
        "limited": sum(1 for r in records if r["status"] == 429),
        "progress": len(progress),
        "records": records,
    }


if __name__ == "__main__":
    asyncio.run(main())
