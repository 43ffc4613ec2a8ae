"""Session TTL through the gateway running the real Telethon adapter against the wire
fake: a session unused for its TTL is disconnected and its lease released; a send over the
API, or a dialogs query over the bus, reconnects it on demand and is served."""

from __future__ import annotations

from switchboard.events.catalog.mtproto import ListDialogs
from switchboard.mtproto.ttl import should_park
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually

from .mtproto_support import World, stream, wait_for_event, world


def test_only_an_idle_session_with_nothing_to_do_is_parked() -> None:
    assert should_park(60.0, 61.0, busy=False)
    assert not should_park(60.0, 59.0, busy=False)
    assert not should_park(60.0, 600.0, busy=True)  # it reads a peer or runs a backfill
    assert not should_park(None, 10**9, busy=False)  # no TTL: never


async def _holder(w: World, base: str, session_id: str) -> str | None:
    async with w.http(base) as http:
        r = await http.get(f"/v1/sessions/{session_id}")
        assert r.status_code == 200, r.text
        holder: str | None = r.json()["holder"]
        return holder


async def _idle_disconnects(nats_url: str, session_id: str) -> int:
    return sum(
        1
        for d in await stream(nats_url, "MTPROTO")
        if d.model.name == "mtproto.session_disconnected"
        and d.model.session_id == session_id  # type: ignore[attr-defined]
        and "idle" in (d.model.message or "")  # type: ignore[attr-defined]
    )


async def test_an_idle_session_is_parked_and_reconnects_on_demand(
    nats_url: str, postgres_url: str
) -> None:
    async with world(nats_url, postgres_url) as w:
        seller, _ = w.fake.add_user("15550606060")
        w.fake.add_user("15550606061", username="buyer_ttl")
        w.fake.add_channel("TTL News", "ttl_news", members=[seller])
        issued = w.box.mtproto_wire.issue_session(seller)
        key = issued["key_id"]
        base = await w.gateway(adapter="telethon", instance_id="ttl", idle_ttl_s=1.0)
        await w.import_session(base, "seller", issued["session"])

        async def parked(n: int) -> bool:
            return (
                await _idle_disconnects(nats_url, "seller") >= n
                and not await w.connected(key)
                and await _holder(w, base, "seller") is None
            )

        # (an event, not the live state: with a 1 s TTL the connection may be short)
        await wait_for_event(nats_url, "mtproto.session_connected", session_id="seller")
        await eventually(lambda: parked(1), timeout=30, message="parked when idle")

        async with w.http(base) as http:  # a send over the API reconnects it
            body = {"message_id": "ttl-1", "peer": "@buyer_ttl", "text": "still there?"}
            r = await http.post("/v1/sessions/seller/messages", json=body)
            assert r.status_code == 202, r.text
        sent = await wait_for_event(
            nats_url, "delivery.sent", stream_name="DELIVERY", message_id="ttl-1", timeout=30
        )
        assert sent.model.account == "seller"  # type: ignore[attr-defined]
        # the chat written to is followed, and that does not keep the session awake
        await wait_for_event(nats_url, "mtproto.subscription_added", session_id="seller")
        async with w.http(base) as http:
            subs = (await http.get("/v1/sessions/seller")).json()["subscriptions"]
        assert [s["followed"] for s in subs] == [True]
        await eventually(lambda: parked(2), timeout=30, message="parked again when idle")

        bus = await Bus.connect(nats_url, name="test-ttl")
        try:  # a dialogs query on the bus reconnects it too
            await bus.publish(ListDialogs(session_id="seller"), id="ttl-q1", workspace_id="demo")
        finally:
            await bus.close()
        listed = await wait_for_event(
            nats_url, "mtproto.dialogs_listed", command_id="ttl-q1", timeout=30
        )
        chats = [d.chat.username for d in listed.model.dialogs]  # type: ignore[attr-defined]
        assert "ttl_news" in chats
        await eventually(lambda: parked(3), timeout=30, message="parked after the query")
        log = w.fake.connection_log(key_id=key)
        assert log["duplicates"] == 0
