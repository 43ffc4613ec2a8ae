"""A private chat a user account writes to is read from then on (``follow_private_sends``):
the person's answer becomes ``conv.message_received``. Found on `just up`: the gateway
published only subscribed chats, so a buyer answering a seller's message never reached the
CRM, even through the one send path for bots and user accounts."""

from __future__ import annotations

from typing import Any

from switchboard.runtime.testing import eventually

from .mtproto_support import stream, wait_for_event, world


async def _received(nats_url: str, chat: str) -> list[Any]:
    return [
        d.model
        for d in await stream(nats_url, "CONV")
        if d.model.name == "conv.message_received" and d.model.chat.id == chat
    ]


async def test_the_answer_to_a_private_send_reaches_conv(nats_url: str, postgres_url: str) -> None:
    async with world(nats_url, postgres_url) as w:
        seller, buyer, base = await w.seller_and_buyer(
            ("+15557780001", "+15557780002"), "buyer_follow", "sal"
        )
        async with w.http(base) as http:
            body = {"message_id": "f-1", "peer": "@buyer_follow", "text": "our prices"}
            r = await http.post("/v1/sessions/sal/messages", json=body)
            assert r.status_code == 202, r.text
            added = await wait_for_event(nats_url, "mtproto.subscription_added", timeout=30)
            chat = str(buyer.id)
            assert added.model.peer.chat.id == chat
            assert added.model.peer.ref == chat
            # the seller types in the chat on their phone (the account's own message: no
            # customer's; it was published as received from the seller, who became a
            # contact with a lead), then the answer, at once: read live from the send on
            w.fake.post(buyer, "typed on my phone", sender=seller)
            w.fake.post(seller, "how much for ten?", sender=buyer)

            async def answered() -> list[Any] | None:
                found = await _received(nats_url, chat)
                return found if any(m.content.text == "how much for ten?" for m in found) else None

            [message] = await eventually(answered, timeout=30, message="the answer in CONV")
            assert message.content.text == "how much for ten?"
            assert message.sender.id == chat
            session = (await http.get("/v1/sessions/sal")).json()
            assert [(s["ref"], s["status"]) for s in session["subscriptions"]] == [(chat, "active")]
            # a second send to the chat follows nothing new
            body = {"message_id": "f-2", "peer": "@buyer_follow", "text": "ten: 90"}
            assert (await http.post("/v1/sessions/sal/messages", json=body)).status_code == 202
            await wait_for_event(nats_url, "delivery.sent", stream_name="DELIVERY",
                                 message_id="f-2")  # fmt: skip
            events = await stream(nats_url, "MTPROTO")
            assert [d.model.name for d in events].count("mtproto.subscription_added") == 1


async def test_with_following_off_only_subscribed_chats_are_read(
    nats_url: str, postgres_url: str
) -> None:
    async with world(nats_url, postgres_url) as w:
        _seller, keys = w.fake.add_user("+15557780011", first_name="Sal", sessions=1)
        _buyer, _ = w.fake.add_user("+15557780012", first_name="Buyer", username="buyer_off")
        base = await w.gateway(instance_id="g1", follow_private_sends=False)
        await w.import_session(base, "sal", keys[0].session)
        await eventually(lambda: w.connected(keys[0].key_id), message="connected")
        async with w.http(base) as http:
            body = {"message_id": "o-1", "peer": "@buyer_off", "text": "our prices"}
            assert (await http.post("/v1/sessions/sal/messages", json=body)).status_code == 202
            await wait_for_event(nats_url, "delivery.sent", stream_name="DELIVERY",
                                 message_id="o-1")  # fmt: skip
            session = (await http.get("/v1/sessions/sal")).json()
            assert session["subscriptions"] == []


def test_only_others_messages_are_received() -> None:
    """The account's own messages (``out``) are no customer's, but a broadcast channel's
    posts are the channel's whichever admin wrote them."""
    from datetime import UTC, datetime

    from switchboard.mtproto.convert import from_others
    from switchboard.mtproto.ports import Message, Peer, PeerType

    def message(kind: PeerType, out: bool) -> Message:
        return Message(peer=Peer(id=7, type=kind, access_hash=1), id=1,
                       date=datetime(2026, 12, 7, tzinfo=UTC), out=out)  # fmt: skip

    assert from_others(message(PeerType.USER, out=False))
    assert not from_others(message(PeerType.USER, out=True))
    assert not from_others(message(PeerType.CHAT, out=True))
    assert not from_others(message(PeerType.MEGAGROUP, out=True))
    assert from_others(message(PeerType.CHANNEL, out=True))
