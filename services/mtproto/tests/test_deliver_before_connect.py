"""A user-account send asked for before the session's holder first connects (a session just
imported, the gateway starting) is served once the holder is up. Before, the holder's
consumer of deliveries started at new messages only: a command published before it existed
was never read, its sender waited out its call timeout and sent again, and the first command
stayed in MTPROTO, the peer and the text in the clear, for the stream's 90 days (seen as a
flake of test_user_account_sends, whose erasure check found it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from nats.js.api import DeliverPolicy

from switchboard.events.catalog.mtproto import DeliverAsUser, DeliverResult
from switchboard.events.catalog.outbound import OutText
from switchboard.mtproto import holder_serve
from switchboard.mtproto.relay import deliver_consumer, deliver_subject
from switchboard.runtime.bus import Bus
from switchboard.runtime.holder_call import ask_holder
from switchboard.runtime.testing import eventually

from .mtproto_support import world


@pytest.mark.parametrize("older_consumer", [False, True], ids=["new", "upgraded"])
async def test_a_send_asked_for_before_the_holder_connects_is_served_and_erased(
    nats_url: str, postgres_url: str, older_consumer: bool
) -> None:
    async with world(nats_url, postgres_url) as w:
        ann, keys = w.fake.add_user("+15556660051", first_name="Ann", sessions=1)
        buyer, _ = w.fake.add_user("+15556660052", first_name="Buyer", username="buyer_early")
        bus = await Bus.connect(nats_url, name="early-sender")
        try:
            await bus.provision()
            command = DeliverAsUser(
                session_id="early",
                message_id="early-1",
                peer="@buyer_early",
                content=OutText(text="asked for before the connect"),
                deadline=datetime.now(UTC) + timedelta(seconds=60),
            )
            asked = asyncio.create_task(ask_holder(bus, command, "demo", timeout=45))

            async def stored() -> bool:
                info = await bus.js.stream_info("MTPROTO", subjects_filter=deliver_subject("early"))
                return bool(info.state.subjects)

            await eventually(stored, message="the command stored before any holder")
            if older_consumer:
                # the consumer as an older version made it (new messages only), which the
                # server cannot change to another deliver policy: it is made again
                old = holder_serve.consumer(
                    deliver_consumer("early"),
                    60.0,
                    DeliverPolicy.NEW,
                    subject=deliver_subject("early"),
                )
                await bus.js.add_consumer("MTPROTO", old)
            base = await w.gateway(instance_id="g1")
            await w.import_session(base, "early", keys[0].session)
            answer = DeliverResult.model_validate_json(await asked)
            assert answer.status == "sent", answer
            assert [m["text"] for m in w.fake.messages(buyer, user=ann)] == [
                "asked for before the connect"
            ]

            async def erased() -> bool:
                return not await stored()

            await eventually(erased, message="the served command erased from MTPROTO")
        finally:
            await bus.close()


async def test_a_repeated_send_is_answered_with_its_chat_s_kind_as_the_first(
    nats_url: str, postgres_url: str
) -> None:
    """A send asked for again (its sender timed out while the holder sent it) is answered
    from its record: it named the chat's id only, and outbound took a channel's post for a
    private chat. Both answers now say the channel and its title; one message went out."""
    async with world(nats_url, postgres_url) as w:
        ann, keys = w.fake.add_user("+15556660061", first_name="Ann", sessions=1)
        channel = w.fake.add_channel("Ann's News", "ann_news_repeat", creator=ann)
        base = await w.gateway(instance_id="g1")
        await w.import_session(base, "repeat", keys[0].session)
        bus = await Bus.connect(nats_url, name="repeat-sender")
        try:
            command = DeliverAsUser(
                session_id="repeat",
                message_id="repeat-1",
                peer="@ann_news_repeat",
                content=OutText(text="one post"),
                deadline=datetime.now(UTC) + timedelta(seconds=60),
            )
            answers = [
                DeliverResult.model_validate_json(await ask_holder(bus, command, "demo", 45))
                for _ in range(2)
            ]
        finally:
            await bus.close()
        assert [(a.status, a.chat_type, a.chat_title) for a in answers] == [
            ("sent", "channel", "Ann's News"),
        ] * 2
        assert [m["text"] for m in w.fake.messages(channel)] == ["one post"]
