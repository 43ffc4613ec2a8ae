"""A failure of our own infrastructure under a connected session (Postgres restarting, a bus
timeout) is retried where it happened: the session's Telegram connection stays up. Before,
any such failure in the connection's side work (the backfill poll, the status read, a
consumer's start) ended the connection, and a Postgres restart reconnected every session at
once (the chaos test's logs)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from switchboard.mtproto.leases import Lease
from switchboard.mtproto.sessions import SessionStore
from switchboard.mtproto.state import StateStore
from switchboard.runtime.testing import eventually

from .mtproto_support import wait_for_event, world


async def test_the_database_away_a_moment_keeps_the_connection_and_the_work_goes_on(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    poll = StateStore.next_backfill
    failures = {"left": 3}

    async def restarting(self: StateStore, session_id: str, now: datetime) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise asyncpg.CannotConnectNowError("the database system is shutting down")
        return await poll(self, session_id, now)

    async with world(nats_url, postgres_url) as w:
        seller, keys = w.fake.add_user("+15556660011", first_name="Seller", sessions=1)
        w.fake.add_channel("Deals", "deals_blip", creator=seller)
        w.fake.post_many("@deals_blip", 20, start_date=1_767_225_600, interval=60)
        key = keys[0].key_id
        base = await w.gateway(instance_id="g1")
        await w.import_session(base, "seller", keys[0].session)
        await eventually(lambda: w.connected(key), message="connected")
        monkeypatch.setattr(StateStore, "next_backfill", restarting)
        async with w.http(base) as http:
            r = await http.post(
                "/v1/sessions/seller/backfills", json={"peer": "@deals_blip", "job_id": "blip"}
            )
            assert r.status_code == 202, r.text
        done = await wait_for_event(nats_url, "mtproto.backfill_completed", job_id="blip")
        assert done.model.fetched == 20  # type: ignore[attr-defined]
        assert failures["left"] == 0  # the poll did fail, three times
        (log,) = w.fake.connection_log(key_id=key)["keys"]
        assert log["connects"] == 1, log  # never reconnected


async def test_the_database_away_when_a_session_starts_keeps_its_lease(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's first read (the session's record) meets the database away: it is
    waited out under the lease. Before, the runner ended and released the lease each time,
    and the session bounced between instances until the database was back."""
    get_session = SessionStore.get_session
    refused: list[str] = []
    released: list[str] = []
    release = Lease.release

    async def away(self: SessionStore, session_id: str) -> Any:
        runner = asyncio.current_task().get_name() == "session kim"  # type: ignore[union-attr]
        if runner and len(refused) < 3:  # the runner's reads, not the import's
            refused.append(session_id)
            raise asyncpg.CannotConnectNowError("the database system is shutting down")
        return await get_session(self, session_id)

    async def counted(self: Lease) -> None:
        released.append(self.key)
        await release(self)

    async with world(nats_url, postgres_url) as w:
        _, keys = w.fake.add_user("+15556660041", first_name="Kim", sessions=1)
        key = keys[0].key_id
        monkeypatch.setattr(SessionStore, "get_session", away)
        monkeypatch.setattr(Lease, "release", counted)
        base = await w.gateway(instance_id="g1")
        await w.import_session(base, "kim", keys[0].session)
        await eventually(lambda: w.connected(key), message="connected")
        assert refused == ["kim"] * 3  # the read did fail, three times
        assert released == []  # and the lease was held throughout
        (log,) = w.fake.connection_log(key_id=key)["keys"]
        assert log["connects"] == 1, log


async def test_a_sent_message_whose_outcome_cannot_be_recorded_a_while_is_sent_once(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram has the message and the database is away: the outcome is recorded once it
    is back, not left to the redelivery, which found the send unrecorded and sent it again."""
    execute = asyncpg.pool.Pool.execute
    refused: list[str] = []

    async def away(self: asyncpg.pool.Pool, query: str, *args: Any, **kw: Any) -> str:
        if query.lstrip().startswith("UPDATE sends SET status") and len(refused) < 3:
            refused.append(str(args[1]))
            raise asyncpg.CannotConnectNowError("the database system is shutting down")
        return await execute(self, query, *args, **kw)

    async with world(nats_url, postgres_url) as w:
        ann, buyer, base = await w.seller_and_buyer(
            ("+15556660021", "+15556660022"), "buyer_blip", "ann"
        )
        monkeypatch.setattr(asyncpg.pool.Pool, "execute", away)
        async with w.http(base) as http:
            body = {"message_id": "blip-1", "peer": "@buyer_blip", "text": "only once"}
            r = await http.post("/v1/sessions/ann/messages", json=body)
            assert r.status_code == 202, r.text
        await wait_for_event(
            nats_url, "delivery.sent", stream_name="DELIVERY", message_id="blip-1", timeout=30
        )
        assert refused == ["blip-1"] * 3  # the outcome's write failed three times
        assert [m["text"] for m in w.fake.messages(buyer, user=ann)] == ["only once"]


async def test_a_login_whose_records_meet_the_database_away_completes(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram sent the code, or authorized the key, and the database is away a moment
    when that is stored: the step waits it out. Before, the step failed and the code hash
    (or the only copy of the authorized session) was gone: a new code, or a new login."""
    put_login, put_session = SessionStore._put_login, SessionStore.put_session
    refused: list[str] = []

    def away_twice(kind: str, write: Any) -> Any:
        async def flaky(self: SessionStore, *args: Any, **kw: Any) -> None:
            if refused.count(kind) < 2:
                refused.append(kind)
                raise asyncpg.CannotConnectNowError("the database system is shutting down")
            await write(self, *args, **kw)

        return flaky

    async with world(nats_url, postgres_url) as w:
        user, _ = w.fake.add_user("+15556660031", first_name="Ida")
        base = await w.gateway(instance_id="g1")
        monkeypatch.setattr(SessionStore, "_put_login", away_twice("login", put_login))
        monkeypatch.setattr(SessionStore, "put_session", away_twice("session", put_session))
        async with w.http(base) as http:
            login = "/v1/sessions/ida/login"
            r = await http.post(login, json={"phone": "+15556660031", "workspace_id": "demo"})
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "code_sent"
            code = w.fake.code("+15556660031").code
            r = await http.post(f"{login}/code", json={"code": code})
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "authorized"
            assert r.json()["user_id"] == str(user.id)
        assert refused == ["login", "login", "session", "session"]
        sent = [c for c in w.fake.login.sent if c.phone.lstrip("+") == "15556660031"]
        assert len(sent) == 1  # one code: nobody had to ask again
