"""Dialogs listing and contact search through the gateway running the real Telethon adapter
against the wire-level MTProto fake: over the API (which asks the session's holder over
the bus) and straight over the bus (command in, answer event out)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from switchboard.events.catalog.mtproto import ListDialogs, SearchContacts
from switchboard.runtime.bus import Bus

from .mtproto_support import OTHER, wait_for_event, world


async def test_dialogs_and_contact_search_over_the_api(nats_url: str, postgres_url: str) -> None:
    async with world(nats_url, postgres_url) as w:
        fake = w.fake
        reader, _ = fake.add_user("15550101010", first_name="Reader")
        friend, _ = fake.add_user("15550101011", first_name="Fiona", username="fiona_dir")
        news = fake.add_channel("Daily News", "daily_news_dir", members=[reader])
        team = fake.add_channel("Team Room", "team_room_dir", megagroup=True, members=[reader])
        fake.add_channel("News Elsewhere", "news_elsewhere_dir")
        fake.post_many(news, 3, text="news {n}")
        now = int(time.time())
        fake.post(team, "standup", sender=reader, date=now + 60)
        fake.post(reader, "hi reader", sender=friend, date=now + 120)
        base = await w.gateway(adapter="telethon", instance_id="dir")
        await w.connect_session(base, reader, "reader")
        async with w.http(base) as http:
            r = await http.get("/v1/sessions/reader/dialogs")
            assert r.status_code == 200, r.text
            dialogs = r.json()["dialogs"]
            by_chat = {d["chat"]["username"] or d["chat"]["id"]: d for d in dialogs}
            assert set(by_chat) == {"daily_news_dir", "team_room_dir", "fiona_dir"}
            assert by_chat["daily_news_dir"]["chat"]["type"] == "channel"
            assert by_chat["daily_news_dir"]["top_message_id"] == 3
            assert by_chat["team_room_dir"]["chat"]["type"] == "supergroup"
            assert by_chat["fiona_dir"]["chat"]["id"] == str(friend.id)
            assert by_chat["fiona_dir"]["top_message_at"] is not None
            # newest activity first: the private message was the last one written
            assert dialogs[0]["chat"]["username"] == "fiona_dir"

            r = await http.get("/v1/sessions/reader/dialogs", params={"limit": 1})
            assert r.status_code == 200, r.text
            assert len(r.json()["dialogs"]) == 1

            r = await http.get("/v1/sessions/reader/contacts", params={"q": "news"})
            assert r.status_code == 200, r.text
            found = {(x["chat"]["username"], x["mine"]) for x in r.json()["results"]}
            assert found == {("daily_news_dir", True), ("news_elsewhere_dir", False)}

            # Any text the caller types gets an answer (found by the API fuzz: control
            # characters and non-ASCII letters).
            weird = "N\x8c\xad\xa3\xfa\xb40X\xd3\xa9\xce\xe1\xaa\x0e"
            r = await http.get("/v1/sessions/reader/contacts", params={"q": weird})
            assert r.status_code == 200, r.text
            # A query id not (yet) answered is pending; another session's path is a 404.
            r = await http.get("/v1/sessions/reader/queries/mtquery:not-answered")
            assert r.status_code == 202, r.text
            assert r.json()["status"] == "pending"
            r = await http.get("/v1/sessions/nobody/queries/mtquery:not-answered")
            assert r.status_code == 404
            r = await http.get("/v1/sessions/reader/contacts", params={"q": "n"})
            assert r.status_code == 422
            assert "q" in r.text
            r = await http.get("/v1/sessions/nobody/dialogs")
            assert r.status_code == 404
        async with w.http(base) as http:
            http.headers.update(OTHER)  # another workspace: the session does not exist
            r = await http.get("/v1/sessions/reader/dialogs")
            assert r.status_code == 404


async def test_dialogs_and_contact_search_over_the_bus(nats_url: str, postgres_url: str) -> None:
    async with world(nats_url, postgres_url) as w:
        fake = w.fake
        reader, _ = fake.add_user("15550202020")
        fake.add_channel("Bus Channel", "bus_channel_dir", members=[reader])
        fake.add_user("15550202021", first_name="Busy", username="busy_dir")
        base = await w.gateway(adapter="telethon", instance_id="dirbus")
        await w.connect_session(base, reader, "busreader")
        bus = await Bus.connect(nats_url, name="test-dir")
        try:
            await bus.publish(
                ListDialogs(session_id="busreader"), id="ask-dialogs-1", workspace_id="demo"
            )
            await bus.publish(
                SearchContacts(session_id="busreader", query="busy"),
                id="ask-search-1",
                workspace_id="demo",
            )
            await bus.publish(  # another workspace names the session: refused, nothing run
                ListDialogs(session_id="busreader"), id="ask-foreign-1", workspace_id="other"
            )
            await bus.publish(  # from an instance whose clock is 10 minutes behind: a query
                ListDialogs(session_id="busreader"),  # is as old as the stream says it is
                id="ask-skewed-1",
                workspace_id="demo",
                time=datetime.now(UTC) - timedelta(minutes=10),
            )
        finally:
            await bus.close()
        listed = await wait_for_event(
            nats_url, "mtproto.dialogs_listed", command_id="ask-dialogs-1"
        )
        assert [d.chat.username for d in listed.model.dialogs] == ["bus_channel_dir"]  # type: ignore[attr-defined]
        found = await wait_for_event(nats_url, "mtproto.contacts_found", command_id="ask-search-1")
        assert [r.chat.username for r in found.model.results] == ["busy_dir"]  # type: ignore[attr-defined]
        refused = await wait_for_event(
            nats_url, "mtproto.command_rejected", command_id="ask-foreign-1"
        )
        assert refused.model.status == 404  # type: ignore[attr-defined]
        skewed = await wait_for_event(nats_url, "mtproto.dialogs_listed", command_id="ask-skewed-1")
        assert [d.chat.username for d in skewed.model.dialogs] == ["bus_channel_dir"]  # type: ignore[attr-defined]
