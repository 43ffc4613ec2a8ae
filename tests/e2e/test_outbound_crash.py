"""Idempotency across crashes: three outbound processes, one SIGKILLed mid-stream. Every
message is delivered; a duplicate is possible only for a send in flight at the kill."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from tests.support.stack import keyring, service_env
from tests.support.streams import stream_messages

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import OutText, SendMessage
from switchboard.runtime.accounts import Account, AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import free_port
from switchboard.runtime.testing import ServiceProcess, eventually
from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.testing import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TOKEN = "300000002:crash"
N = 240


async def test_sigkill_of_one_instance_loses_nothing(nats_url: str, tmp_path: Path) -> None:
    box = Sandbox(SandboxConfig())
    box.telegram.add_bot(TOKEN, "crash_bot")
    async with serve(box.app()) as sandbox:
        bus = await Bus.connect(nats_url, name="setup")
        await bus.provision()
        await AccountStore(await bus.kv("accounts"), keyring()).put(
            Account(
                channel=Channel.TELEGRAM,
                id="shop",
                workspace_id="demo",
                settings={"api_base_url": f"{sandbox}/telegram"},
                secrets={"token": TOKEN},
            )
        )
        env = service_env(nats_url)
        procs = []
        for i in range(3):
            port = free_port()
            procs.append(
                ServiceProcess(
                    "switchboard.outbound",
                    {**env, "SWITCHBOARD_OUTBOUND_HTTP_PORT": str(port)},
                    tmp_path / f"outbound{i}.log",
                    port=port,
                ).start()
            )
        try:
            for p in procs:
                await p.ready()
            for i in range(N):  # 120 chats, 2 messages each: about 4 s at the bot's 30/s
                await bus.publish(
                    SendMessage(
                        message_id=f"c-{i}",
                        channel=Channel.TELEGRAM,
                        account="shop",
                        recipient=str(5000 + i % 120),
                        content=OutText(text=f"m{i}"),
                    ),
                    workspace_id="demo",
                )

            async def some_sent() -> bool:
                return (
                    len(box.recorder.requests(provider="telegram", method="sendMessage", ok=True))
                    >= N // 4
                )

            await eventually(some_sent, timeout=60)
            procs[0].kill()  # mid-stream, with sends in flight

            async def all_sent() -> bool:
                sent = {
                    d.model.message_id
                    for d in await stream_messages(nats_url, "DELIVERY")
                    if d.model.name == "delivery.sent"
                }
                return len(sent) == N

            await eventually(
                all_sent,
                timeout=120,
                interval=0.5,
                message="every message delivered after the kill",
            )
        finally:
            for p in procs:
                p.stop()
            await bus.close()
    texts = Counter(
        r.params.get("text")
        for r in box.recorder.requests(provider="telegram", method="sendMessage", ok=True)
    )
    assert set(texts) == {f"m{i}" for i in range(N)}  # nothing lost
    duplicates = sum(n - 1 for n in texts.values())
    # at most the sends that were in flight in the killed process (its concurrency)
    assert duplicates <= 64
    assert [r for r in box.recorder.requests(provider="telegram", status=429)] == []
