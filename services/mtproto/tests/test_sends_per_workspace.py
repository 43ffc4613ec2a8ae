"""Send ids are per workspace: two workspaces' sessions sending under the same message_id
are two messages, both sent; neither is told the id is taken."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import pytest

from switchboard.events.catalog.mtproto import SendAsUser
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually
from switchboard.runtime.testing.faults import sealed_publish_times_out_once

from .mtproto_support import (
    API_HASH,
    API_ID,
    OTHER,
    raw_messages,
    stream,
    wait_for_event,
    world,
)


async def test_the_same_message_id_in_two_workspaces_is_two_messages(
    nats_url: str, postgres_url: str
) -> None:
    async with world(nats_url, postgres_url) as w:
        a, a_keys = w.fake.add_user("+15557770001", first_name="Ann", sessions=1)
        b, b_keys = w.fake.add_user("+15557770002", first_name="Bob", sessions=1)
        buyer, _ = w.fake.add_user("+15557770003", first_name="Buyer", username="buyer_two")
        base = await w.gateway(instance_id="g1")
        async with w.http(base) as http:
            # Each workspace with its own key (a key acts only for its workspace).
            as_other = {"headers": OTHER}
            for sid, keys, workspace, auth in (
                ("ann", a_keys, "demo", {}),
                ("bob", b_keys, "other", as_other),
            ):
                r = await http.put(
                    f"/v1/sessions/{sid}",
                    json={"session": keys[0].session, "api_id": API_ID, "api_hash": API_HASH,
                          "workspace_id": workspace},
                    **auth,
                )  # fmt: skip
                assert r.status_code == 201, r.text
                await eventually(lambda k=keys: w.connected(k[0].key_id), message="connected")
            for sid, text, auth in (("ann", "from ann", {}), ("bob", "from bob", as_other)):
                body = {"message_id": "same-1", "peer": "@buyer_two", "text": text}
                r = await http.post(f"/v1/sessions/{sid}/messages", json=body, **auth)
                assert r.status_code == 202, r.text

        async def both_sent() -> list[str] | None:
            events = await stream(nats_url, "DELIVERY")
            sent = [d for d in events if d.model.name == "delivery.sent"]
            return sorted(d.envelope.workspace_id for d in sent) if len(sent) == 2 else None

        assert await eventually(both_sent, timeout=30) == ["demo", "other"]
        # A send over the bus naming another workspace's session is refused by its holder:
        # for that workspace the session does not exist.
        bus = await Bus.connect(nats_url, name="test-foreign-send")
        try:
            foreign = SendAsUser(session_id="ann", message_id="f-1", peer="@buyer_two", text="x")
            await bus.publish(foreign, workspace_id="other")
        finally:
            await bus.close()
        refused = await wait_for_event(
            nats_url, "mtproto.command_rejected", session_id="ann", command=SendAsUser.name
        )
        assert refused.model.status == 404  # type: ignore[attr-defined]
        assert refused.envelope.workspace_id == "other"  # told to the workspace that asked
        assert [m["text"] for m in w.fake.messages(buyer, user=a)] == ["from ann"]
        assert [m["text"] for m in w.fake.messages(buyer, user=b)] == ["from bob"]

        # MTPROTO keeps what it stores for 90 days: a handled send (sent or refused) is
        # erased from it, its peer and text with it (once acked: after its events).
        async def erased() -> bool:
            return not await raw_messages(nats_url, "MTPROTO", "cmd.mtproto.send.>")

        await eventually(erased, timeout=30, message="the handled sends erased from MTPROTO")


async def test_a_send_whose_events_failed_to_publish_publishes_them_once_not_twice(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bus times out on the first ``delivery.sent`` after Telegram took the message (as a
    loaded NATS did in a full run): the command comes back at once, the recorded outcome's
    events go out, and the buyer still has one message. The redelivery used to find the send
    recorded and ack it silently: no ``delivery.sent`` ever, and the command waited out its
    60 s ack wait first."""
    failed = sealed_publish_times_out_once(monkeypatch, "delivery.sent")
    async with world(nats_url, postgres_url) as w:
        seller, keys = w.fake.add_user("+15557770011", first_name="Sal", sessions=1)
        buyer, _ = w.fake.add_user("+15557770012", first_name="Buyer", username="buyer_once")
        base = await w.gateway(instance_id="g1")
        async with w.http(base) as http:
            r = await http.put(
                "/v1/sessions/sal",
                json={"session": keys[0].session, "api_id": API_ID, "api_hash": API_HASH},
            )
            assert r.status_code == 201, r.text
            await eventually(lambda: w.connected(keys[0].key_id), message="connected")
            body = {"message_id": "once-1", "peer": "@buyer_once", "text": "just once"}
            r = await http.post("/v1/sessions/sal/messages", json=body)
            assert r.status_code == 202, r.text

        async def sent() -> list[Any] | None:
            events = await stream(nats_url, "DELIVERY")
            found = [d for d in events if d.model.name == "delivery.sent"]
            return found or None

        delivered = await eventually(sent, timeout=30)
        assert failed == ["once-1"]
        assert [d.model.message_id for d in delivered] == ["once-1"]
        assert [m["text"] for m in w.fake.messages(buyer, user=seller)] == ["just once"]


async def test_a_message_id_taken_by_one_text_is_refused_to_another(
    nats_url: str, postgres_url: str
) -> None:
    """The same message_id with another text, once the first is on record: the API answers
    422 naming the conflict, and a command over the bus with it is refused by the session's
    holder (``mtproto.command_rejected``, 409); a repeat of the same body answers 202 with
    its status. The buyer gets the first text only. Before, the API answered 202 ``sent``
    for a text that was never sent, and a bus producer was never told."""
    async with world(nats_url, postgres_url) as w:
        seller, buyer, base = await w.seller_and_buyer(
            ("+15557770021", "+15557770022"), "buyer_dup", "sal"
        )
        async with w.http(base) as http:
            first = {"message_id": "dup-1", "peer": "@buyer_dup", "text": "first"}
            r = await http.post("/v1/sessions/sal/messages", json=first)
            assert r.status_code == 202, r.text
            await wait_for_event(
                nats_url, "delivery.sent", stream_name="DELIVERY", message_id="dup-1"
            )
            other = {**first, "text": "second"}
            r = await http.post("/v1/sessions/sal/messages", json=other)
            assert r.status_code == 422, r.text
            assert r.json()["code"] == "idempotency_conflict"
            assert "dup-1" in r.json()["detail"]
            r = await http.post("/v1/sessions/sal/messages", json=first)
            assert (r.status_code, r.json()["status"]) == (202, "sent"), r.text
        bus = await Bus.connect(nats_url, name="test-dup-send")
        try:
            # over the bus, after JetStream's duplicate window (shrunk here to a second): the
            # same id is no duplicate for the stream any more
            config = (await bus.js.stream_info("MTPROTO")).config
            config.duplicate_window = 1.0
            await bus.js.update_stream(config)
            again = SendAsUser(session_id="sal", message_id="dup-1", peer="@buyer_dup", text="3")

            async def stored() -> bool:
                return not (await bus.publish(again, workspace_id="demo")).duplicate

            await eventually(stored, timeout=30)
        finally:
            await bus.close()
        refused = await wait_for_event(
            nats_url, "mtproto.command_rejected", session_id="sal", command=SendAsUser.name
        )
        assert refused.model.status == 409  # type: ignore[attr-defined]
        assert "dup-1" in refused.model.reason  # type: ignore[attr-defined]
        assert [m["text"] for m in w.fake.messages(buyer, user=seller)] == ["first"]


async def test_two_texts_under_one_new_message_id_at_once_are_one_send_and_one_refusal(
    nats_url: str, postgres_url: str
) -> None:
    """The API judged an id by the gateway's record of it, written only once the session's
    holder takes the command: two texts posted at once under one new id were both answered
    202, and JetStream's duplicate window dropped the second, whose caller was told it was
    accepted. The id is now claimed, with the body's fingerprint, before the command is
    published: one text is accepted and sent, the other refused (422), whichever came first;
    a repeat of the accepted body is still a 202."""
    async with world(nats_url, postgres_url) as w:
        seller, buyer, base = await w.seller_and_buyer(
            ("+15557770031", "+15557770032"), "buyer_race", "ray"
        )
        async with w.http(base) as http:
            bodies = [
                {"message_id": "race-1", "peer": "@buyer_race", "text": text}
                for text in ("one", "two", "three", "four")
            ]
            answers = await asyncio.gather(
                *(http.post("/v1/sessions/ray/messages", json=b) for b in bodies)
            )
            codes = [r.status_code for r in answers]
            assert sorted(codes) == [202, 422, 422, 422], [r.text for r in answers]
            accepted = bodies[codes.index(202)]
            for r in answers:
                if r.status_code == 422:
                    assert r.json()["code"] == "idempotency_conflict", r.text
            await wait_for_event(
                nats_url, "delivery.sent", stream_name="DELIVERY", message_id="race-1"
            )
            again = await http.post("/v1/sessions/ray/messages", json=accepted)
            assert (again.status_code, again.json()["status"]) == (202, "sent"), again.text
        assert [m["text"] for m in w.fake.messages(buyer, user=seller)] == [accepted["text"]]


async def test_a_send_whose_publish_failed_after_its_claim_goes_out_on_the_retry(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id is claimed before the command is published: the bus timing out on that publish
    leaves a claim with no command. The caller's retry of the same body is no conflict, and
    publishes it: the buyer gets the text once."""
    real = Bus.publish
    failed: list[str] = []

    async def flaky(self: Bus, model: Any, **kwargs: Any) -> Any:
        if isinstance(model, SendAsUser) and not failed:
            failed.append(model.message_id)
            raise nats.errors.TimeoutError
        return await real(self, model, **kwargs)

    monkeypatch.setattr(Bus, "publish", flaky)
    async with world(nats_url, postgres_url) as w:
        seller, buyer, base = await w.seller_and_buyer(
            ("+15557770041", "+15557770042"), "buyer_retry", "rey"
        )
        body = {"message_id": "retry-1", "peer": "@buyer_retry", "text": "once, after a retry"}
        async with w.http(base) as http:
            first = await http.post("/v1/sessions/rey/messages", json=body)
            assert first.status_code >= 500, first.text  # ours to retry, nothing accepted
            assert failed == ["retry-1"]
            again = await http.post("/v1/sessions/rey/messages", json=body)
            assert again.status_code == 202, again.text
            await wait_for_event(
                nats_url, "delivery.sent", stream_name="DELIVERY", message_id="retry-1"
            )
        assert [m["text"] for m in w.fake.messages(buyer, user=seller)] == [body["text"]]
