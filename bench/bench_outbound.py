"""`just bench outbound`: 3 outbound processes, 10 sandbox Telegram bots, a backlog of 10k
messages to 5k chats. Prints, last: `outbound_utilization=<x> outbound_429=<n>
campaign_ratio=<y>`: messages accepted per second over the permitted aggregate rate
(10 bots x 30/s), the 429s the sandbox answered, and (once campaigns exist) a 10k-recipient
campaign's time over its theoretical minimum.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutText, SendMessage
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.embedded import EmbeddedNats, free_port
from switchboard.runtime.settings import parse_keyring

BOTS = int(os.environ.get("BENCH_BOTS", "10"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
CHATS = int(os.environ.get("BENCH_CHATS", "5000"))
INSTANCES = 3
PER_BOT = 30.0


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-outbound-"))
    nats = EmbeddedNats(tmp / "nats").start()
    sandbox_port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "switchboard.sandbox.cli", "serve", "--port", str(sandbox_port)],
        stdout=(tmp / "sandbox.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    keys = f"b1:{Keyring.generate_key()}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            for _ in range(100):
                try:
                    if (await http.get(f"{sandbox_url}/_sandbox/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            tokens = [f"{700000000 + b}:bench{b}" for b in range(BOTS)]
            for b, token in enumerate(tokens):
                r = await http.post(
                    f"{sandbox_url}/_sandbox/telegram/bots",
                    json={"token": token, "username": f"bench{b}_bot"},
                )
                r.raise_for_status()
            bus = await Bus.connect(nats.url, name="bench")
            await bus.provision()
            store = AccountStore(
                await bus.kv("accounts"), Keyring.from_mapping(parse_keyring(keys))
            )
            for b, token in enumerate(tokens):
                await store.put(
                    Account(
                        channel=Channel.TELEGRAM,
                        id=f"bot{b}",
                        workspace_id="bench",
                        secrets={"token": token},
                        settings={"api_base_url": f"{sandbox_url}/telegram"},
                    )
                )
            env = {
                **os.environ,
                "SWITCHBOARD_NATS_URL": nats.url,
                "SWITCHBOARD_ENCRYPTION_KEYS": keys,
                "SWITCHBOARD_API_KEYS": "bench-key-1=bench",
                "SWITCHBOARD_LOG_LEVEL": "warning",
            }
            for i in range(INSTANCES):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "switchboard.outbound"],
                        env={**env, "SWITCHBOARD_OUTBOUND_HTTP_PORT": str(free_port())},
                        stdout=(tmp / f"outbound{i}.log").open("wb"),
                        stderr=subprocess.STDOUT,
                    )
                )
            # the backlog: message i goes from bot i % BOTS to chat i % CHATS
            pending = []
            for i in range(MESSAGES):
                cmd = SendMessage(
                    message_id=f"b-{i}",
                    channel=Channel.TELEGRAM,
                    account=f"bot{i % BOTS}",
                    recipient=str(100000 + i % CHATS),
                    content=OutText(text=f"broadcast {i}"),
                )
                pending.append(bus.publish(cmd, workspace_id="bench"))
                if len(pending) >= 500:
                    await asyncio.gather(*pending)
                    pending = []
            await asyncio.gather(*pending)
            started = time.time()
            while time.time() - started < 600:
                done = (
                    await http.get(
                        f"{sandbox_url}/_sandbox/requests",
                        params={
                            "provider": "telegram",
                            "method": "sendMessage",
                            "ok": "true",
                        },
                    )
                ).json()["count"]
                if done >= MESSAGES:
                    break
                await asyncio.sleep(2)
            reqs = (
                await http.get(
                    f"{sandbox_url}/_sandbox/requests",
                    params={"provider": "telegram", "method": "sendMessage", "limit": MESSAGES * 2},
                )
            ).json()
            await bus.close()
        records = reqs["requests"]
        ok = sorted(r["at"] for r in records if r["ok"])
        from collections import Counter

        texts = Counter(r["params"].get("text") for r in records if r["ok"])
        dups = {t: n for t, n in texts.items() if n > 1}
        print(f"duplicates: {sum(n - 1 for n in dups.values())} (e.g. {list(dups.items())[:5]})")
        limited = sum(1 for r in records if r["status"] == 429)
        span = ok[-1] - ok[0] if len(ok) > 1 else float("nan")
        rate = (len(ok) - 1) / span if span else float("nan")
        permitted = BOTS * PER_BOT
        print(
            f"{len(ok)} accepted in {span:.1f} s = {rate:.1f}/s; permitted {permitted:.0f}/s; "
            f"theoretical minimum {MESSAGES / permitted:.1f} s; 429 answers: {limited}"
        )
        print("campaigns are not implemented yet: campaign_ratio=nan")
        print(
            f"outbound_utilization={rate / permitted:.3f} outbound_429={limited} campaign_ratio=nan"
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        sandbox.terminate()
        sandbox.wait(30)
        nats.stop()


if __name__ == "__main__":
    asyncio.run(main())
