"""The gateway stores where its sessions' update sequences stand, and the next holder of a
session asks for the difference since then: edits and deletions made while no instance
held it (which reading history above the last seen id cannot find) still become conv
events, and nothing already published is published again."""

from __future__ import annotations

import json
from dataclasses import replace

import asyncpg

from switchboard.events.catalog.conv import MessageDeleted, MessageEdited, MessageReceived
from switchboard.events.catalog.mtproto import DeviceInfo
from switchboard.mtproto.leases import LeaseValue, session_key
from switchboard.mtproto.ports import ChannelPts, UpdateState
from switchboard.mtproto.sessions import Secrets, SessionRecord, SessionStore
from switchboard.mtproto.state import StateStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.testing import eventually

from .mtproto_support import keyring, stream, wait_for_event, world


async def _stored_pts(database_url: str, channel_id: int) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        raw = await conn.fetchval(
            "SELECT state FROM mtproto.update_states WHERE session_id = 'reader'"
        )
    finally:
        await conn.close()
    channels = json.loads(raw)["channels"] if raw else []
    return max([pts for cid, pts, _ in channels if cid == channel_id] + [0])


async def test_changes_while_no_instance_held_the_session_arrive_once(
    nats_url: str, postgres_url: str
) -> None:
    async with world(nats_url, postgres_url) as w:
        reader, keys = w.fake.add_user("+15550000101", first_name="Reader", sessions=1)
        news = w.fake.add_channel("News", "news_state", members=[reader])
        base = await w.gateway(instance_id="g1")
        await w.import_session(base, "reader", keys[0].session)
        async with w.http(base) as http:
            r = await http.post("/v1/sessions/reader/subscriptions", json={"peer": "@news_state"})
            assert r.status_code == 201, r.text
        await wait_for_event(nats_url, "mtproto.subscription_added", session_id="reader")
        for n in range(3):
            w.fake.post("@news_state", f"live {n}")

        async def published(count: int) -> list[MessageReceived]:
            got = [d.model for d in await stream(nats_url, "CONV")]
            received = [e for e in got if isinstance(e, MessageReceived)]
            return received if len(received) >= count else []

        await eventually(lambda: published(3), message="live posts published")
        # The stored state has seen the three posts (one pts each).
        reached = news.box.pts

        async def stored() -> bool:
            return await _stored_pts(postgres_url, news.id) >= reached

        await eventually(stored, message="update state stored")

        # The lease taken away: the session disconnects until the thief's lease lapses.
        bus = await Bus.connect(nats_url, name="thief")
        kv = await bus.kv("leases")
        await kv.put(session_key("reader"), LeaseValue("thief", "n", 0, 3.0).encode())
        await bus.close()
        await wait_for_event(
            nats_url, "mtproto.session_disconnected", session_id="reader", reason="lease_lost"
        )
        # While nobody holds it: an edit and a deletion (invisible to history paging).
        w.fake.edit("@news_state", 1, text="live 0, corrected")
        w.fake.delete("@news_state", [2])

        async def changed() -> list[object]:
            events = [d.model for d in await stream(nats_url, "CONV")]
            edits = [e for e in events if isinstance(e, MessageEdited)]
            deletions = [e for e in events if isinstance(e, MessageDeleted)]
            return [*edits, *deletions] if edits and deletions else []

        found = await eventually(changed, timeout=30, message="edit and deletion published")
        edit = next(e for e in found if isinstance(e, MessageEdited))
        assert edit.content.text == "live 0, corrected"  # type: ignore[union-attr]
        assert edit.provider.message_id == "1"
        deletion = next(e for e in found if isinstance(e, MessageDeleted))
        assert deletion.message_ids == ("2",)
        received = [d.model for d in await stream(nats_url, "CONV")]
        texts = [
            e.content.text  # type: ignore[union-attr]
            for e in received
            if isinstance(e, MessageReceived)
        ]
        assert sorted(texts) == ["live 0", "live 1", "live 2"]  # none published twice


async def test_a_new_key_for_a_session_id_starts_without_the_old_state(
    nats_url: str, postgres_url: str
) -> None:
    """An import or a login may bring another account's key: the stored state goes; a
    deleted session takes its state with it."""
    async with world(nats_url, postgres_url) as w:
        await w.gateway(instance_id="g1")  # migrates the schema
        pool = await asyncpg.create_pool(
            postgres_url, min_size=1, max_size=2, server_settings={"search_path": "mtproto"}
        )
        assert pool is not None
        try:
            sessions, state = SessionStore(pool, keyring()), StateStore(pool)
            record = SessionRecord(
                session_id="moved", workspace_id="demo", status="revoked", api_id=1,
                device=DeviceInfo(), proxy=None, secrets=Secrets(session="", api_hash="h"),
            )  # fmt: skip
            old = UpdateState(7, 0, 1_700_000_000, 0, (ChannelPts(5, 9, -1),))
            await sessions.put_session(record)
            await state.save_update_state("moved", old)
            assert await state.update_state("moved") == old
            await sessions.put_session(replace(record, status="active"))
            assert await state.update_state("moved") is None
            await state.save_update_state("moved", old)
            assert await sessions.delete_session("moved")
            assert await state.update_state("moved") is None
        finally:
            await pool.close()
