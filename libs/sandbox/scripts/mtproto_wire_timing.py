"""Timings of the wire-level MTProto fake with a stock Telethon client, in one process.

    uv run python libs/sandbox/scripts/mtproto_wire_timing.py

Prints the connect time including the key exchange, a 100-message getHistory round trip,
and 30 sessions connecting at once (signed-in keys, and fresh key exchanges).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from telethon import TelegramClient, functions
from telethon.crypto import rsa
from telethon.sessions import StringSession

from switchboard.sandbox import Sandbox

API_ID, API_HASH = 1, "0" * 32


def _p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95)]


async def main() -> None:
    sandbox = Sandbox()
    wire = sandbox.mtproto_wire
    await wire.start()
    server = wire.descriptor()
    rsa.add_key(server["rsa_public_key"], old=False)

    def fresh() -> TelegramClient:
        client = TelegramClient(StringSession(), API_ID, API_HASH)
        client.session.set_dc(server["dc_id"], server["host"], server["port"])
        return client

    user, _ = sandbox.mtproto.add_user("15550001111")
    channel = sandbox.mtproto.add_channel("News", "newsroom", creator=user)
    sandbox.mtproto.post_many(channel, 1000)

    connects = []
    for _ in range(20):
        client = fresh()
        started = time.perf_counter()
        await client.connect()
        connects.append(time.perf_counter() - started)
        await client.disconnect()

    reader = TelegramClient(StringSession(wire.issue_session(user)["session"]), API_ID, API_HASH)
    await reader.connect()
    entity = await reader.get_entity("newsroom")
    trips = []
    for _ in range(200):
        started = time.perf_counter()
        await reader(functions.messages.GetHistoryRequest(entity, 0, None, 0, 100, 0, 0, 0))
        trips.append(time.perf_counter() - started)
    await reader.disconnect()

    users = [sandbox.mtproto.add_user(f"1555100{i:04d}")[0] for i in range(30)]
    signed = [
        TelegramClient(StringSession(wire.issue_session(u)["session"]), API_ID, API_HASH)
        for u in users
    ]

    async def connect_and_ask(client: TelegramClient) -> None:
        await client.connect()
        await client.get_me()

    started = time.perf_counter()
    await asyncio.gather(*(connect_and_ask(c) for c in signed))
    signed_s = time.perf_counter() - started
    await asyncio.gather(*(c.disconnect() for c in signed))
    new = [fresh() for _ in range(30)]
    started = time.perf_counter()
    await asyncio.gather(*(c.connect() for c in new))
    new_s = time.perf_counter() - started
    await asyncio.gather(*(c.disconnect() for c in new))
    await sandbox.aclose()

    print(
        f"connect incl. key exchange (n=20): median {statistics.median(connects) * 1000:.0f} ms, "
        f"p95 {_p95(connects) * 1000:.0f} ms"
    )
    print(
        f"getHistory limit=100 round trip (n=200): median "
        f"{statistics.median(trips) * 1000:.2f} ms, p95 {_p95(trips) * 1000:.2f} ms"
    )
    print(f"30 signed-in sessions connect + get_me at once: {signed_s * 1000:.0f} ms")
    print(f"30 fresh key exchanges at once: {new_s * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
