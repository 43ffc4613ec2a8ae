"""Subscribing to a public channel or supergroup the account has not joined: Telegram sends
a channel's updates to its members only, so the gateway joins it first; without that the
subscription said `active` and no post arrived until a reconnect's catch-up. Telegram's
refusals to add the account are the subscription's refusal, naming the error."""

from __future__ import annotations

from switchboard.events.catalog.conv import MessageReceived
from switchboard.runtime.testing import eventually

from .mtproto_support import stream, wait_for_event, world


async def test_subscribing_joins_a_public_channel_and_reads_it_live(
    nats_url: str, postgres_url: str
) -> None:
    async with world(nats_url, postgres_url) as w:
        reader, keys = w.fake.add_user("+15550400001", first_name="Reader", sessions=1)
        owner, _ = w.fake.add_user("+15550400002", first_name="Owner")
        news = w.fake.add_channel("Deals", "deals_join", creator=owner)
        w.fake.add_channel("Talk", "talk_join", megagroup=True, creator=owner)
        w.fake.add_channel("Mine", "mine_join", creator=owner, members=[reader])
        full = w.fake.add_channel("Full", "full_join", creator=owner)
        w.fake.add_fault(method="channels.joinChannel", error="CHANNELS_TOO_MUCH", times=1)
        base = await w.gateway(instance_id="g1")
        await w.import_session(base, "reader", keys[0].session)
        await eventually(lambda: w.connected(keys[0].key_id), message="session connected")

        async with w.http(base) as http:
            # The first join is refused: the account is at Telegram's channel limit.
            r = await http.post("/v1/sessions/reader/subscriptions", json={"peer": "@full_join"})
            assert r.status_code == 409, r.text
            assert "CHANNELS_TOO_MUCH" in r.text
            assert reader.id not in full.members
            # An error the gateway has no name for fails the subscription, not the session
            # (raised, it dropped the connection at every try, for good).
            w.fake.add_fault(method="channels.joinChannel", error="CHANNEL_NEW_LIMIT", times=1)
            r = await http.post("/v1/sessions/reader/subscriptions", json={"peer": "@full_join"})
            assert r.status_code == 409, r.text
            assert "CHANNEL_NEW_LIMIT" in r.text
            assert await w.connected(keys[0].key_id)
            assert w.fake.connection_log(key_id=keys[0].key_id)["keys"][0]["connects"] == 1
            for ref in ("@deals_join", "@talk_join", "@mine_join"):
                r = await http.post("/v1/sessions/reader/subscriptions", json={"peer": ref})
                assert r.status_code == 201, r.text
            listed = (await http.get("/v1/sessions/reader/subscriptions")).json()["items"]
            joined_by_ref = {item["ref"]: item["joined"] for item in listed}
            assert joined_by_ref["@deals_join"] is True
            assert joined_by_ref["@mine_join"] is False
        assert reader.id in news.members
        joined = await wait_for_event(
            nats_url, "mtproto.subscription_added", session_id="reader", joined=True
        )
        assert joined.model.peer.ref in ("@deals_join", "@talk_join")  # type: ignore[attr-defined]
        already = await wait_for_event(
            nats_url, "mtproto.subscription_added", session_id="reader", joined=False
        )
        assert already.model.peer.ref == "@mine_join"  # type: ignore[attr-defined]

        w.fake.post("@deals_join", "30% off today")
        w.fake.post("@talk_join", "who has the price list?", sender=owner)

        async def received() -> set[str]:
            texts = {
                d.model.content.text  # type: ignore[attr-defined]
                for d in await stream(nats_url, "CONV")
                if isinstance(d.model, MessageReceived)
            }
            return texts if len(texts) >= 2 else set()

        texts = await eventually(received, message="posts of the joined channels, live")
        assert texts == {"30% off today", "who has the price list?"}

        # Unsubscribing leaves what subscribing joined (an account does not gather channels
        # up to Telegram's limit), and only that: a channel it was in stays.
        mine = next(g for g in w.fake.world.groups.values() if g.username == "mine_join")
        async with w.http(base) as http:
            for ref in ("@deals_join", "@mine_join"):
                r = await http.delete(f"/v1/sessions/reader/subscriptions/{ref}")
                assert r.status_code == 200, r.text

        async def left() -> bool:
            return reader.id not in news.members

        await eventually(left, message="left the channel it had joined")
        assert reader.id in mine.members


async def test_an_invite_link_joins_a_private_channel_and_reads_it(
    nats_url: str, postgres_url: str
) -> None:
    """A private channel or group is open to whoever holds its invite link: subscribing
    with `t.me/+<hash>` joins through it (it was a 400, not a peer reference); a link that
    asks an admin's approval, or that no chat has, refuses the subscription naming why."""
    async with world(nats_url, postgres_url) as w:
        reader, keys = w.fake.add_user("+15550400011", first_name="Reader", sessions=1)
        owner, _ = w.fake.add_user("+15550400012", first_name="Owner")
        vip = w.fake.add_channel("VIP deals", None, creator=owner)
        club = w.fake.add_channel("Club", None, creator=owner)
        link = f"https://t.me/+{w.fake.world.add_invite(vip)}"
        approval = f"t.me/joinchat/{w.fake.world.add_invite(club, request_needed=True)}"
        base = await w.gateway(instance_id="g1")
        await w.import_session(base, "reader", keys[0].session)
        await eventually(lambda: w.connected(keys[0].key_id), message="session connected")

        async with w.http(base) as http:
            r = await http.post("/v1/sessions/reader/subscriptions", json={"peer": link})
            assert r.status_code == 201, r.text
            assert r.json()["chat_id"] == str(vip.marked_id)
            r = await http.post("/v1/sessions/reader/subscriptions", json={"peer": approval})
            assert r.status_code == 409, r.text
            assert "INVITE_REQUEST_SENT" in r.text
            r = await http.post(
                "/v1/sessions/reader/subscriptions", json={"peer": "https://t.me/+NoSuchLink123"}
            )
            assert r.status_code == 404, r.text
            assert "INVITE_HASH_INVALID" in r.text
        assert reader.id in vip.members
        assert reader.id not in club.members
        joined = await wait_for_event(
            nats_url, "mtproto.subscription_added", session_id="reader", joined=True
        )
        assert joined.model.peer.ref == link  # type: ignore[attr-defined]

        w.fake.post(vip, "members only: 50% off")

        async def received() -> list[str]:
            return [
                d.model.content.text  # type: ignore[attr-defined]
                for d in await stream(nats_url, "CONV")
                if isinstance(d.model, MessageReceived)
            ]

        assert await eventually(received, message="the private channel's post") == [
            "members only: 50% off"
        ]


async def test_a_leave_outlives_the_connection_dropping_under_it(
    nats_url: str, postgres_url: str
) -> None:
    """The leave an unsubscribe queues is kept in Postgres, not in the holder: when the
    connection drops under it (twice), the session reconnects and leaves then."""
    async with world(nats_url, postgres_url) as w:
        reader, keys = w.fake.add_user("+15550400021", first_name="Reader", sessions=1)
        owner, _ = w.fake.add_user("+15550400022", first_name="Owner")
        news = w.fake.add_channel("Deals", "deals_drop", creator=owner)
        base = await w.gateway(instance_id="g1")
        await w.import_session(base, "reader", keys[0].session)
        await eventually(lambda: w.connected(keys[0].key_id), message="session connected")
        async with w.http(base) as http:
            r = await http.post("/v1/sessions/reader/subscriptions", json={"peer": "@deals_drop"})
            assert r.status_code == 201, r.text
            assert reader.id in news.members
            w.fake.add_fault(method="channels.leaveChannel", error="CONNECTION_CLOSED", times=2)
            r = await http.delete("/v1/sessions/reader/subscriptions/@deals_drop")
            assert r.status_code == 200, r.text

        async def left() -> bool:
            return reader.id not in news.members

        await eventually(left, timeout=30, message="left after the connection came back")
        log = w.fake.connection_log(key_id=keys[0].key_id)
        assert log["keys"][0]["connects"] >= 2  # it did drop, and the leave waited it out
        assert log["duplicates"] == 0
