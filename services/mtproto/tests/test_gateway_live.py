"""The gateway in-process on real NATS and Postgres against the sandbox's fake Telegram:
an imported session is claimed and connected; subscribed channels and chats turn live
messages, edits and deletions into conv events; a dropped connection reconnects and
fetches what it missed; a lease taken away disconnects the session until it is held again;
logout revokes and deletes."""

from __future__ import annotations

from switchboard.events.catalog.conv import MessageDeleted, MessageEdited, MessageReceived
from switchboard.mtproto.leases import LeaseValue, session_key
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually

from .mtproto_support import stream, wait_for_event, world


async def _conv(nats_url: str) -> list[MessageReceived | MessageEdited | MessageDeleted]:
    return [d.model for d in await stream(nats_url, "CONV")]  # type: ignore[misc]


async def test_live_updates_reconnect_catch_up_and_logout(nats_url: str, postgres_url: str) -> None:
    async with world(nats_url, postgres_url) as w:
        reader, keys = w.fake.add_user("+15550000001", first_name="Reader", sessions=1)
        friend, _ = w.fake.add_user("+15550000002", first_name="Ada", username="ada_lovelace")
        w.fake.add_channel("News", "news", creator=friend, members=[reader])
        base = await w.gateway(instance_id="g1")
        await w.import_session(base, "reader", keys[0].session)
        await eventually(lambda: w.connected(keys[0].key_id), message="session connected")
        await wait_for_event(nats_url, "mtproto.session_connected", session_id="reader")

        async with w.http(base) as http:
            r = await http.post("/v1/sessions/reader/subscriptions", json={"peer": "@news"})
            assert r.status_code == 201, r.text
            assert r.json()["chat_id"].startswith("-100")
            r = await http.post("/v1/sessions/reader/subscriptions", json={"peer": "@ada_lovelace"})
            assert r.status_code == 201, r.text

        post = w.fake.post("@news", "first post")
        w.fake.post(reader, "hi from Ada", sender=friend)

        async def received() -> list[MessageReceived]:
            got = [e for e in await _conv(nats_url) if isinstance(e, MessageReceived)]
            return got if len(got) >= 2 else []

        got = await eventually(received, message="live messages published")
        by_text = {e.content.text: e for e in got}  # type: ignore[union-attr]
        channel_msg = by_text["first post"]
        assert channel_msg.account == "reader"
        assert channel_msg.channel.value == "mtproto"
        assert channel_msg.provider.message_id == str(post["id"])
        private = by_text["hi from Ada"]
        assert private.chat.id == str(friend.id)
        assert private.sender.username == "ada_lovelace"

        w.fake.edit("@news", post["id"], text="first post (edited)")
        dm_id = int(w.fake.messages(friend, user=reader)[-1]["id"])
        w.fake.delete(friend, [dm_id], user=reader)

        async def changed() -> bool:
            events = await _conv(nats_url)
            return any(isinstance(e, MessageEdited) for e in events) and any(
                isinstance(e, MessageDeleted) for e in events
            )

        await eventually(changed, message="edit and deletion published")
        deletion = next(e for e in await _conv(nats_url) if isinstance(e, MessageDeleted))
        assert deletion.chat.id == str(friend.id)
        assert deletion.message_ids == (str(dm_id),)

        # A dropped connection: messages posted meanwhile are fetched after the reconnect.
        w.fake.disconnect(key_id=keys[0].key_id)
        for n in range(3):
            w.fake.post("@news", f"while away {n}", notify=False)

        async def caught_up() -> bool:
            texts = [
                e.content.text  # type: ignore[union-attr]
                for e in await _conv(nats_url)
                if isinstance(e, MessageReceived)
            ]
            return all(f"while away {n}" in texts for n in range(3))

        await eventually(caught_up, message="missed messages fetched after reconnect")
        ids = [e.model.model_dump().get("provider") for e in await stream(nats_url, "CONV")]
        assert len(ids) == len(await stream(nats_url, "CONV"))

        # A lease taken from under the holder (as if it had lapsed): the holder disconnects at
        # its next renewal, and connects again only once it has the lease back.
        bus = await Bus.connect(nats_url, name="thief")
        kv = await bus.kv("leases")
        thief = LeaseValue(owner="thief", nonce="n", beat=0, ttl_s=3.0)
        await kv.put(session_key("reader"), thief.encode())
        await bus.close()
        lost = await wait_for_event(
            nats_url, "mtproto.session_disconnected", session_id="reader", reason="lease_lost"
        )
        assert lost.model.instance != "thief"  # type: ignore[attr-defined]
        await eventually(lambda: w.connected(keys[0].key_id), message="reconnected after ttl")
        log = w.fake.connection_log(key_id=keys[0].key_id)
        assert log["max_concurrent"] == 1
        assert log["duplicates"] == 0

        # Logout revokes at Telegram and deletes the session.
        async with w.http(base) as http:
            r = await http.delete("/v1/sessions/reader")
            assert r.status_code == 200, r.text
            assert (await http.get("/v1/sessions/reader")).status_code == 404
        assert w.fake.session(keys[0].key_id).state.value == "logged_out"
        await wait_for_event(nats_url, "mtproto.session_revoked", session_id="reader")
        log = w.fake.connection_log()
        assert log["duplicates"] == [] or log["duplicates"] == 0
