"""A stock Telethon script against the sandbox's fake Telegram, knowing only where the
sandbox is (``just up`` serves it at http://127.0.0.1:8090).

It reads the MTProto server's descriptor (``GET /mtproto/server``: host, port, DC and the
RSA key to trust), creates a user with a two-step password and a channel with a few posts
through the sandbox's control API, then, as any Telethon program would: logs in with the
code and the password, resolves the channel, reads its history, joins it and receives a new
post as an ``events.NewMessage``. Exits 0 when all of it worked.

    uv run python examples/mtproto_telethon_script.py [--sandbox http://127.0.0.1:8090]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys

import httpx
from telethon import TelegramClient, errors, events, functions
from telethon.crypto import rsa
from telethon.sessions import StringSession

API_ID = 12345  # the fake accepts any app id and hash
API_HASH = "0123456789abcdef0123456789abcdef"
CODE = "24680"  # the login code the fake "sends" to the user we create
PASSWORD = "two-step secret"  # noqa: S105 (the fake account this script creates)
WAIT = 30.0


async def main(sandbox: str) -> int:
    suffix = secrets.randbelow(10**6)  # a sandbox that keeps running keeps old users too
    phone = f"1555{suffix:06d}"
    channel = f"script_news_{suffix}"
    async with httpx.AsyncClient(base_url=sandbox, timeout=WAIT, trust_env=False) as http:
        server = (await http.get("/mtproto/server")).raise_for_status().json()
        print(f"MTProto server {server['host']}:{server['port']} (DC {server['dc_id']})")
        control = "/_sandbox/mtproto"
        created = await http.post(
            f"{control}/users",
            json={"phone": phone, "first_name": "Script", "code": CODE, "password": PASSWORD},
        )
        created.raise_for_status()
        await http.post(f"{control}/channels", json={"title": "Script news", "username": channel})
        await http.post(
            f"{control}/messages/bulk", json={"peer": f"@{channel}", "count": 3, "text": "old {n}"}
        )

        rsa.add_key(server["rsa_public_key"], old=False)
        client = TelegramClient(StringSession(), API_ID, API_HASH)
        client.session.set_dc(server["dc_id"], server["host"], server["port"])
        await asyncio.wait_for(client.connect(), WAIT)
        try:
            sent = await client.send_code_request(phone)
            try:
                await client.sign_in(phone, CODE, phone_code_hash=sent.phone_code_hash)
                print("error: the account should ask for its two-step password")
                return 1
            except errors.SessionPasswordNeededError:
                me = await client.sign_in(password=PASSWORD)
            print(f"logged in as {me.first_name} (id {me.id})")

            news = await client.get_entity(channel)
            history = [m.text async for m in client.iter_messages(news, limit=10)]
            print(f"history of @{channel}: {history}")
            await client(functions.channels.JoinChannelRequest(news))

            arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()

            async def on_new(event: events.NewMessage.Event) -> None:
                if not arrived.done():
                    arrived.set_result(event.message.message)

            client.add_event_handler(on_new, events.NewMessage(chats=news))
            posted = await http.post(
                f"{control}/messages", json={"peer": f"@{channel}", "text": "fresh post"}
            )
            posted.raise_for_status()
            text = await asyncio.wait_for(arrived, WAIT)
            print(f"NewMessage: {text}")
            return 0 if text == "fresh post" and len(history) == 3 else 1
        finally:
            await client.disconnect()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default="http://127.0.0.1:8090")
    sys.exit(asyncio.run(main(parser.parse_args().sandbox.rstrip("/"))))
