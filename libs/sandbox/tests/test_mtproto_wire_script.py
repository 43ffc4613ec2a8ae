"""The issue's script, against a served sandbox: a stock Telethon client that knows only
`GET /mtproto/server` creates a user through the control API, logs in with code and 2FA,
resolves a channel, reads its history and receives a new post as events.NewMessage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from telethon import errors, events

from switchboard.sandbox import Sandbox
from switchboard.sandbox.testing import serve, wire_sandbox

from .mtproto_wire_support import WAIT, client_for, collecting


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    sandbox = Sandbox()
    async with serve(sandbox.app()) as url:  # the app's lifespan starts the wire server
        yield url
    await sandbox.aclose()


async def test_a_script_that_knows_only_the_descriptor(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url, trust_env=False) as http:
        descriptor = (await http.get("/mtproto/server")).json()
        assert set(descriptor) >= {"host", "port", "dc_id", "rsa_public_key"}
        assert descriptor["rsa_public_key"].startswith("-----BEGIN RSA PUBLIC KEY-----")
        created = await http.post(
            "/_sandbox/mtproto/users",
            json={
                "phone": "+1 555 000 9999",
                "first_name": "Script",
                "code": "12345",
                "password": "s3cret",
            },
        )
        assert created.status_code == 201
        owner = await http.post("/_sandbox/mtproto/users", json={"phone": "15550008888"})
        channel = await http.post(
            "/_sandbox/mtproto/channels",
            json={
                "title": "Script News",
                "username": "script_news",
                "creator": owner.json()["user"]["id"],
            },
        )
        assert channel.status_code == 201
        seeded = await http.post(
            "/_sandbox/mtproto/messages/bulk",
            json={"peer": "@script_news", "count": 3, "text": "old {n}"},
        )
        assert seeded.status_code == 201

        client = client_for(descriptor)
        try:
            await asyncio.wait_for(client.connect(), WAIT)
            sent = await client.send_code_request("15550009999")
            with pytest.raises(errors.SessionPasswordNeededError):
                await client.sign_in("15550009999", "12345", phone_code_hash=sent.phone_code_hash)
            me = await client.sign_in(password="s3cret")
            assert me.first_name == "Script"
            news = await client.get_entity("script_news")
            assert [m.text async for m in client.iter_messages(news)] == ["old 3", "old 2", "old 1"]
            await client.get_dialogs()  # nothing yet: not a member
            joined = await http.post(
                f"/_sandbox/mtproto/peers/{channel.json()['id']}/members",
                json={"add": [me.id]},
            )
            assert joined.status_code == 200
            async with collecting(client, events.NewMessage(chats=news)) as (new, arrived):
                # The first live post starts the client's tracking of the channel.
                posted = await http.post(
                    "/_sandbox/mtproto/messages", json={"peer": "@script_news", "text": "fresh"}
                )
                assert posted.status_code == 201
                await arrived(1)
            assert [(m.id, m.text) for m in new] == [(4, "fresh")]
        finally:
            await client.disconnect()


async def test_the_descriptor_is_503_until_the_wire_server_runs() -> None:
    sandbox = Sandbox()
    transport = httpx.ASGITransport(app=sandbox.app())  # no lifespan: nothing listens
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        response = await http.get("/mtproto/server")
    assert response.status_code == 503
    await sandbox.aclose()


async def test_wire_control_routes_set_faults_and_issue_sessions() -> None:
    async with wire_sandbox() as sandbox:
        user, _ = sandbox.mtproto.add_user("15550001111")
        transport = httpx.ASGITransport(app=sandbox.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            base = "/_sandbox/mtproto/wire"
            assert (await http.get(f"{base}/server")).json()["port"] == sandbox.mtproto_wire.port
            set_faults = await http.post(f"{base}/faults", json={"drop_updates": 2, "stall": True})
            assert set_faults.json() == {"drop_updates": 2, "stall": True}
            assert sandbox.mtproto_wire.faults.drop_updates == 2
            assert (await http.post(f"{base}/faults", json={"drop_updates": -1})).status_code == 400
            assert (await http.post(f"{base}/faults", json={"stall": "yes"})).status_code == 400
            assert (await http.post(f"{base}/faults", json={"lose": 1})).status_code == 400
            cleared = await http.post(f"{base}/faults", json={"drop_updates": 0, "stall": False})
            assert cleared.json() == {"drop_updates": 0, "stall": False}
            issued = await http.post(f"{base}/sessions", json={"user": "15550001111"})
            assert issued.status_code == 201
            assert sandbox.mtproto.session(issued.json()["key_id"]).user_id == user.id
            assert (
                await http.post(f"{base}/sessions", json={"user": "@nobody"})
            ).status_code == 404
            assert (await http.post(f"{base}/drop")).json() == {"dropped": 0}
