"""Backfills that stop at a count or a date, or fail with a reason; subscriptions refused
with a reason; sends as a user with flood waits, idempotency and permanent failures, all
against the fake Telegram through one in-process gateway."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from switchboard.events.catalog.mtproto import Unsubscribe
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually

from .mtproto_support import stream, wait_for_event, world


async def _job(http: Any, job: str) -> dict[str, Any] | None:
    r = await http.get(f"/v1/sessions/seller/backfills/{job}")
    body: dict[str, Any] = r.json()
    return body if body["status"] in ("completed", "failed") else None


async def test_backfill_stops_subscriptions_and_sends(nats_url: str, postgres_url: str) -> None:
    async with world(nats_url, postgres_url) as w:
        seller, keys = w.fake.add_user("+15556660001", first_name="Seller", sessions=1)
        buyer, _ = w.fake.add_user("+15556660002", first_name="Buyer", username="buyer_one")
        w.fake.add_channel("Deals", "deals_chan", creator=seller)
        w.fake.add_channel("Other", "other_chan", creator=buyer, members=[seller])
        start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
        w.fake.post_many("@deals_chan", 250, start_date=start, interval=60)
        base = await w.gateway(instance_id="g1")
        await w.import_session(base, "seller", keys[0].session)
        await eventually(lambda: w.connected(keys[0].key_id), message="connected")
        async with w.http(base) as http:
            r = await http.post("/v1/sessions/seller/backfills",
                                json={"peer": "@deals_chan", "job_id": "by-count",
                                      "max_messages": 150})  # fmt: skip
            assert r.status_code == 202, r.text
            until = datetime.fromtimestamp(start + 200 * 60, tz=UTC).isoformat()
            r = await http.post("/v1/sessions/seller/backfills",
                                json={"peer": "https://t.me/deals_chan", "job_id": "by-date",
                                      "until": until})  # fmt: skip
            assert r.status_code == 202, r.text
            r = await http.post("/v1/sessions/seller/backfills",
                                json={"peer": "@no_such_chan", "job_id": "nowhere"})  # fmt: skip
            assert r.status_code == 202
            r = await http.post("/v1/sessions/seller/backfills", json={"peer": "not a peer"})
            assert r.status_code == 400
            r = await http.post("/v1/sessions/ghost/backfills", json={"peer": "@deals_chan"})
            assert r.status_code == 404

            count = await eventually(lambda: _job(http, "by-count"), message="count job")
            assert (count["status"], count["fetched"], count["reason"]) == ("completed", 150,
                                                                            "count")  # fmt: skip
            date = await eventually(lambda: _job(http, "by-date"), message="date job")
            assert (date["status"], date["fetched"], date["reason"]) == ("completed", 50, "date")
            failed = await eventually(lambda: _job(http, "nowhere"), message="failed job")
            assert failed["status"] == "failed"
            await wait_for_event(nats_url, "mtproto.backfill_failed", job_id="nowhere")
            done = await wait_for_event(nats_url, "mtproto.backfill_completed", job_id="by-count")
            assert done.model.stopped_by == "count"  # type: ignore[attr-defined]

            # the two jobs overlap (the newest 50): CONV holds each message once
            received = [d.model for d in await stream(nats_url, "CONV")
                        if d.model.name == "conv.message_received"]  # fmt: skip
            ids = [m.provider.message_id for m in received]  # type: ignore[attr-defined]
            assert len(ids) == len(set(ids)) == 150

            r = await http.post("/v1/sessions/seller/subscriptions", json={"peer": "@nobody_here"})
            assert r.status_code == 404, r.text
            r = await http.post("/v1/sessions/seller/subscriptions", json={"peer": "@other_chan"})
            assert r.status_code == 201, r.text
            chat = r.json()["chat_id"]
            r = await http.post("/v1/sessions/seller/subscriptions", json={"peer": chat})
            assert r.status_code == 409, r.text
            r = await http.delete(f"/v1/sessions/seller/subscriptions/{chat}")
            assert r.status_code == 200
            await wait_for_event(nats_url, "mtproto.subscription_removed", chat_id=chat)
            # The same over the bus: an Unsubscribe command answers with the same event.
            r = await http.post("/v1/sessions/seller/subscriptions", json={"peer": "@other_chan"})
            assert r.status_code == 201, r.text
            bus = await Bus.connect(nats_url, name="test-unsubscribe")
            try:
                await bus.publish(Unsubscribe(session_id="seller", peer=chat), workspace_id="demo")
            finally:
                await bus.close()

            async def removed_twice() -> bool:
                events = await stream(nats_url, "MTPROTO", "mtproto.subscription_removed.>")
                return [e.model.chat_id for e in events] == [chat, chat]  # type: ignore[attr-defined]

            await eventually(removed_twice, message="removed over the bus")

            # Sends: a flood wait on the first is waited out; a repeated id is sent once; a
            # channel the user may not write to fails for good.
            w.fake.add_fault(method="messages.sendMessage", error="FLOOD_WAIT", seconds=1,
                             times=1)  # fmt: skip
            body = {"message_id": "m-1", "peer": "@buyer_one", "text": "Hello buyer"}
            r = await http.post("/v1/sessions/seller/messages", json=body)
            assert r.status_code == 202, r.text
            sent = await wait_for_event(nats_url, "delivery.sent", stream_name="DELIVERY",
                                        message_id="m-1")  # fmt: skip
            await wait_for_event(nats_url, "delivery.retrying", stream_name="DELIVERY",
                                 message_id="m-1")  # fmt: skip
            r = await http.post("/v1/sessions/seller/messages", json=body)
            assert r.json()["status"] == "sent"
            r = await http.post("/v1/sessions/seller/messages",
                                json={"message_id": "m-2", "peer": "@other_chan",
                                      "text": "not allowed"})  # fmt: skip
            failed_send = await wait_for_event(
                nats_url, "delivery.failed", stream_name="DELIVERY", message_id="m-2"
            )
            assert failed_send.model.permanent is True  # type: ignore[attr-defined]
            r = await http.post("/v1/sessions/ghost/messages", json=body)
            assert r.status_code == 404

        texts = [m["text"] for m in w.fake.messages(buyer, user=seller)]
        assert texts.count("Hello buyer") == 1
        assert sent.model.provider_message_id  # type: ignore[attr-defined]
        await wait_for_event(nats_url, "conv.message_sent", stream_name="CONV",
                             message_id="m-1")  # fmt: skip
        assert w.fake.stats()["flood_violations"] == 0
