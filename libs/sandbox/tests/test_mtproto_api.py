"""The MTProto fake over HTTP: the connect stream and its liveness, AUTH_KEY_DUPLICATED,
login, reading and sending, live updates, and the control API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from switchboard.sandbox import Sandbox, SandboxConfig
from switchboard.sandbox.mtproto import MtprotoConfig
from switchboard.sandbox.testing import serve, wait_until


class Stream:
    """A raw connection to the fake: the NDJSON update stream plus RPC calls on it."""

    def __init__(self, http: httpx.AsyncClient, session: str = "") -> None:
        self.http = http
        self.session = session
        self.response: httpx.Response | None = None
        self.lines: AsyncIterator[str] | None = None
        self.first: dict[str, Any] = {}

    async def open(self) -> httpx.Response | None:
        """Connect; None on success, else the error response."""
        request = self.http.build_request(
            "POST", "/mtproto/connect", json={"session": self.session, "api_id": 1}
        )
        response = await self.http.send(request, stream=True)
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            return response
        self.response, self.lines = response, response.aiter_lines()
        self.first = await self.next(skip_pings=False)
        self.session = self.first["session"]
        return None

    async def next(self, *, skip_pings: bool = True, timeout: float = 5.0) -> dict[str, Any]:
        assert self.lines is not None
        async with asyncio.timeout(timeout):
            async for line in self.lines:
                item: dict[str, Any] = json.loads(line)
                if not (skip_pings and item["type"] == "ping"):
                    return item
        return {"type": "eof"}

    async def call(self, method: str, **params: Any) -> httpx.Response:
        cid = self.first["connection"]
        return await self.http.post(f"/mtproto/connections/{cid}/invoke/{method}", json=params)

    async def result(self, method: str, **params: Any) -> Any:
        response = await self.call(method, **params)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    async def close(self) -> None:
        if self.response is not None:
            await self.response.aclose()


@dataclass
class Env:
    box: Sandbox
    url: str
    http: httpx.AsyncClient

    async def stream(self, session: str = "") -> Stream:
        stream = Stream(self.http, session)
        failed = await stream.open()
        assert failed is None, failed.text if failed else ""
        return stream

    async def control(self, verb: str, path: str, **body: Any) -> Any:
        response = await self.http.request(verb, f"/_sandbox/mtproto{path}", json=body or None)
        assert response.status_code < 300, response.text
        return response.json()

    async def log(self, key_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.control("GET", f"/connections?key_id={key_id}")
        return found


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    config = SandboxConfig(mtproto=MtprotoConfig(keepalive=0.05))
    box = Sandbox(config)
    async with (
        serve(box.app()) as url,
        httpx.AsyncClient(base_url=url, trust_env=False, timeout=10) as http,
    ):
        yield Env(box, url, http)


async def seeded(env: Env, phone: str = "15550000001", **user: Any) -> tuple[int, str, str]:
    """(user id, session string, key id) of a new user with one session."""
    body = await env.control("POST", "/users", phone=phone, sessions=1, **user)
    session = body["sessions"][0]
    return body["user"]["id"], session["session"], session["key_id"]


async def test_stream_lives_as_long_as_the_request(env: Env) -> None:
    user_id, session, key_id = await seeded(env, username="alice_a")
    stream = await env.stream(session)
    assert stream.first["authorized"] is True
    assert stream.first["key_id"] == key_id
    assert (await stream.next(skip_pings=False))["type"] == "ping"
    me = await stream.result("users.getUsers", id=["self"])
    assert me["id"] == user_id
    assert me["username"] == "alice_a"
    assert me["phone"] == "15550000001"
    assert (await env.log(key_id))["active"] == 1

    await stream.close()  # what a killed process's socket does, too
    await wait_until(lambda: env.box.mtproto.conns.report(key_id=key_id)["active"] == 0)
    events = (await env.log(key_id))["keys"][0]["events"]
    assert [e["event"] for e in events] == ["connect", "disconnect"]
    assert events[1]["reason"] == "stream closed"
    late = await stream.call("users.getUsers", id=["self"])
    assert late.status_code == 410
    assert late.json()["error"] == "CONNECTION_CLOSED"
    again = await env.stream(session)  # a clean reconnect is no duplicate
    assert (await env.log(key_id))["duplicates"] == 0
    await again.close()


async def test_second_connect_is_auth_key_duplicated_for_good(env: Env) -> None:
    _, session, key_id = await seeded(env)
    first = await env.stream(session)
    refused = await Stream(env.http, session).open()
    assert refused is not None
    assert refused.status_code == 406
    assert refused.json() == {"error": "AUTH_KEY_DUPLICATED", "code": 406}
    closing = await first.next()
    assert closing == {"type": "closed", "reason": "duplicate", "error": "AUTH_KEY_DUPLICATED"}
    call = await first.call("users.getUsers")
    assert call.status_code == 406
    assert call.json()["error"] == "AUTH_KEY_DUPLICATED"
    later = await Stream(env.http, session).open()
    assert later is not None
    assert later.status_code == 406
    log = await env.log(key_id)
    assert log["duplicates"] == 1
    assert log["max_concurrent"] == 2
    session_state = await env.control("GET", f"/sessions/{key_id}")
    assert session_state["state"] == "duplicated"
    await first.close()


async def test_explicit_and_forced_disconnects(env: Env) -> None:
    user_id, session, key_id = await seeded(env)
    stream = await env.stream(session)
    cid = stream.first["connection"]
    assert (await env.http.post(f"/mtproto/connections/{cid}/disconnect")).json() == {
        "disconnected": True
    }
    assert (await stream.next())["reason"] == "client"
    stream = await env.stream(session)
    assert await env.control("POST", "/disconnect", user=str(user_id)) == {"disconnected": 1}
    assert await stream.next() == {"type": "closed", "reason": "forced", "error": None}
    assert (await stream.next())["type"] == "eof"
    log = await env.log(key_id)
    assert log["keys"][0]["connects"] == 2
    assert log["duplicates"] == 0


async def test_idle_connection_is_dropped(env: Env) -> None:
    await env.control("PUT", "/settings", idle_timeout=0.3)
    _, session, _ = await seeded(env)
    stream = await env.stream(session)
    cid = stream.first["connection"]
    for _ in range(3):  # pings keep it alive past the timeout
        await asyncio.sleep(0.15)
        assert (await env.http.post(f"/mtproto/connections/{cid}/ping")).json() == {"pong": True}
    assert await stream.next(timeout=5) == {"type": "closed", "reason": "idle", "error": None}


async def test_login_with_code_and_password(env: Env) -> None:
    await env.control("POST", "/users", phone="15550000009", password="hunter2")
    stream = await env.stream("")  # a fresh key, as Telethon makes before login
    assert stream.first["authorized"] is False
    assert stream.session.startswith("1")
    unauthorized = await stream.call("updates.getState")
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"] == "AUTH_KEY_UNREGISTERED"

    sent = await stream.result("auth.sendCode", phone="+1 555 000 0009")
    code = await env.control("GET", "/codes/15550000009")
    assert code["phone_code_hash"] == sent["phone_code_hash"]
    assert len(code["code"]) == 5
    wrong = await stream.call(
        "auth.signIn", phone="15550000009", code="000000", phone_code_hash=sent["phone_code_hash"]
    )
    assert wrong.json() == {"error": "PHONE_CODE_INVALID", "code": 400}
    stale = await stream.call(
        "auth.signIn", phone="15550000009", code=code["code"], phone_code_hash="0" * 16
    )
    assert stale.json()["error"] == "PHONE_CODE_EXPIRED"
    needs = await stream.call(
        "auth.signIn",
        phone="15550000009",
        code=code["code"],
        phone_code_hash=sent["phone_code_hash"],
    )
    assert needs.status_code == 401
    assert needs.json()["error"] == "SESSION_PASSWORD_NEEDED"
    bad = await stream.call("auth.checkPassword", password="hunter3")
    assert bad.json()["error"] == "PASSWORD_HASH_INVALID"
    await stream.close()

    # The password step may come from another process holding the same session string.
    other = await env.stream(stream.session)
    user = await other.result("auth.checkPassword", password="hunter2")
    assert user["phone"] == "15550000009"
    assert await other.result("updates.getState") == {"authorized": True}
    assert await other.result("auth.logOut") is True
    after = await other.call("users.getUsers")
    assert after.json()["error"] == "AUTH_KEY_UNREGISTERED"
    await other.close()


async def test_login_errors(env: Env) -> None:
    user_id, _, _ = await seeded(env, phone="15550000003")
    stream = await env.stream("")
    invalid = await stream.call("auth.sendCode", phone="12ab")
    assert invalid.json()["error"] == "PHONE_NUMBER_INVALID"
    unknown = await stream.result("auth.sendCode", phone="15550009999")
    code = await env.control("GET", "/codes/15550009999")
    unoccupied = await stream.call(
        "auth.signIn",
        phone="15550009999",
        code=code["code"],
        phone_code_hash=unknown["phone_code_hash"],
    )
    assert unoccupied.json()["error"] == "PHONE_NUMBER_UNOCCUPIED"
    await env.control("POST", f"/users/{user_id}/ban", banned=True)
    banned = await stream.call("auth.sendCode", phone="15550000003")
    assert banned.json()["error"] == "PHONE_NUMBER_BANNED"
    missing = await env.http.get("/_sandbox/mtproto/codes/15550000003")
    assert missing.status_code == 404
    await stream.close()


async def test_banned_and_revoked_sessions(env: Env) -> None:
    user_id, session, key_id = await seeded(env)
    stream = await env.stream(session)
    await env.control("POST", f"/users/{user_id}/ban")
    banned = await stream.call("users.getUsers")
    assert banned.status_code == 401
    assert banned.json()["error"] == "USER_DEACTIVATED_BAN"
    await env.control("POST", f"/users/{user_id}/ban", banned=False)
    assert (await stream.call("users.getUsers")).status_code == 200
    await env.control("DELETE", f"/sessions/{key_id}")
    revoked = await stream.call("users.getUsers")
    assert revoked.json()["error"] == "SESSION_REVOKED"
    await stream.close()


async def test_reading_history_and_messages(env: Env) -> None:
    user_id, session, _ = await seeded(env, username="reader_1")
    admin = await env.control("POST", "/users", phone="15550000002")
    channel = await env.control(
        "POST", "/channels", title="Feed", username="feed_chan", creator=admin["user"]["id"]
    )
    private = await env.control("POST", "/channels", title="Secret", creator=admin["user"]["id"])
    seeded_ids = await env.control("POST", "/messages/bulk", peer="@feed_chan", count=250)
    assert seeded_ids == {"count": 250, "first_id": 1, "last_id": 250}
    stream = await env.stream(session)

    peer = await stream.result("contacts.resolveUsername", ref="https://t.me/feed_chan")
    assert peer == {k: channel[k] for k in ("id", "type", "title", "username", "access_hash")}
    assert (await stream.result("contacts.resolveUsername", ref=str(channel["marked_id"])))[
        "id"
    ] == channel["id"]
    hidden = await stream.call("contacts.resolveUsername", ref=str(private["marked_id"]))
    assert hidden.json()["error"] == "PEER_ID_INVALID"
    missing = await stream.call("contacts.resolveUsername", ref="@nobody_here")
    assert missing.json()["error"] == "USERNAME_NOT_OCCUPIED"

    ids: list[int] = []
    offset = 0
    while True:  # page exactly like a backfill does
        page = await stream.result("messages.getHistory", peer=peer, offset_id=offset, limit=100)
        if not page["messages"]:
            break
        assert len(page["messages"]) <= 100
        assert page["count"] == 250
        ids += [m["id"] for m in page["messages"]]
        offset = page["messages"][-1]["id"]
    assert ids == list(range(250, 0, -1))
    capped = await stream.result("messages.getHistory", peer=peer, limit=500, min_id=200)
    assert [m["id"] for m in capped["messages"]] == list(range(250, 200, -1))

    await env.control("POST", "/messages/delete", peer="@feed_chan", ids=[2])
    found = await stream.result("channels.getMessages", peer=peer, ids=[1, 2, 999])
    assert [m and m["id"] for m in found["messages"]] == [1, None, None]
    wrong_hash = await stream.call("messages.getHistory", peer={**peer, "access_hash": 1}, limit=1)
    assert wrong_hash.json()["error"] == "CHANNEL_INVALID"
    secret = await stream.call(
        "messages.getHistory", peer={k: private[k] for k in ("id", "type", "access_hash")}
    )
    assert secret.json()["error"] == "CHANNEL_PRIVATE"
    forbidden = await stream.call("messages.sendMessage", peer=peer, message="hi")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == "CHAT_WRITE_FORBIDDEN"
    assert user_id
    await stream.close()


async def test_live_updates_reach_connected_members(env: Env) -> None:
    alice_id, alice_session, _ = await seeded(env, phone="15550000001")
    bob_id, bob_session, _ = await seeded(env, phone="15550000002")
    outsider_id, outsider_session, _ = await seeded(env, phone="15550000003")
    group = await env.control(
        "POST", "/channels", title="Team", megagroup=True, creator=alice_id, members=[bob_id]
    )
    chat = await env.control("POST", "/chats", title="Basic", members=[alice_id, bob_id])
    alice = await env.stream(alice_session)
    bob = await env.stream(bob_session)
    outsider = await env.stream(outsider_session)

    peer = {k: group[k] for k in ("id", "type", "access_hash")}
    sent = await alice.result("messages.sendMessage", peer=peer, message="hello team")
    assert sent["out"] is True
    assert sent["id"] == 1
    update = await bob.next()
    assert update["update"]["kind"] == "new"
    message = update["update"]["message"]
    assert message["text"] == "hello team"
    assert message["sender"]["id"] == alice_id
    assert message["out"] is False
    assert message["peer"]["type"] == "megagroup"

    await env.control("POST", "/messages/edit", peer=str(group["id"]), id=1, text="hello all")
    for stream in (alice, bob):
        edited = (await stream.next())["update"]
        assert edited["kind"] == "edited"
        assert edited["message"]["text"] == "hello all"
    await env.control("POST", "/messages/delete", peer=str(group["id"]), ids=[1])
    for stream in (alice, bob):
        deleted = (await stream.next())["update"]
        assert {k: v for k, v in deleted.items() if k not in ("pts", "pts_count")} == {
            "kind": "deleted",
            "ids": [1],
            "peer": group_peer(group),
        }

    empty = await env.http.post("/_sandbox/mtproto/messages", json={"peer": str(-chat["id"])})
    assert empty.status_code == 400
    assert empty.json() == {"error": "MESSAGE_EMPTY"}
    posted = await env.control(
        "POST", "/messages", peer=str(-chat["id"]), text="basic", **{"from": bob_id}
    )
    assert posted["ids"] == {str(alice_id): 1, str(bob_id): 1}
    assert (await alice.next())["update"]["message"]["peer"]["type"] == "chat"
    own = (await bob.next())["update"]["message"]  # sent "from another device" of bob's
    assert own["out"] is True
    assert own["peer"]["id"] == chat["id"]
    await env.control(
        "POST", "/messages/delete", peer=str(-chat["id"]), ids=[1], user=str(alice_id)
    )
    gone = (await bob.next())["update"]
    assert gone["ids"] == [1]
    assert gone["peer"] is None

    with pytest.raises(TimeoutError):
        await outsider.next(timeout=0.3)
    assert outsider_id
    for stream in (alice, bob, outsider):
        await stream.close()


def group_peer(group: dict[str, Any]) -> dict[str, Any]:
    return {k: group[k] for k in ("id", "type", "title", "username", "access_hash")}


async def test_flood_wait_faults_over_http(env: Env) -> None:
    _, session, key_id = await seeded(env)
    channel = await env.control("POST", "/channels", title="C", username="chan_flood")
    await env.control("POST", "/messages/bulk", peer="@chan_flood", count=5)
    rule = await env.control(
        "POST", "/faults", method="messages.getHistory", seconds=2, times=1, key_id=key_id
    )
    stream = await env.stream(session)
    peer = {k: channel[k] for k in ("id", "type", "access_hash")}
    flood = await stream.call("messages.getHistory", peer=peer)
    assert flood.status_code == 420
    assert flood.json() == {"error": "FLOOD_WAIT_2", "code": 420, "seconds": 2}
    early = await stream.call("messages.getHistory", peer=peer)
    assert early.json()["error"].startswith("FLOOD_WAIT_")
    stats = await env.control("GET", "/stats")
    assert stats["flood_violations"] == 1
    assert stats["flood_waits"]["messages.getHistory"] == 2
    faults = await env.control("GET", "/faults")
    assert faults["faults"][0]["id"] == rule["id"]
    assert faults["faults"][0]["hits"] == 1
    await env.control("DELETE", f"/faults/{rule['id']}")
    assert (await env.control("GET", "/faults")) == {"faults": []}
    await stream.close()


async def test_control_api_seeding_and_reset(env: Env) -> None:
    bulk = await env.control(
        "POST",
        "/users/bulk",
        users=[{"phone": f"1555100{n:04d}", "sessions": 1} for n in range(30)],
    )
    assert len(bulk["users"]) == 30
    assert all(len(item["sessions"]) == 1 for item in bulk["users"])
    first = bulk["users"][0]["user"]["id"]
    extra = await env.control("POST", f"/users/{first}/sessions")
    user = await env.control("GET", f"/users/{first}")
    assert {s["key_id"] for s in user["sessions"]} >= {extra["key_id"]}
    chat = await env.control("POST", "/chats", title="G", members=[first])
    members = await env.control(
        "POST", f"/peers/{-chat['id']}/members", add=[bulk["users"][1]["user"]["id"]]
    )
    assert len(members["members"]) == 2
    listed = await env.control(
        "POST",
        "/messages/bulk",
        peer=str(-chat["id"]),
        messages=[{"text": "a", "from": first}, {"text": "b", "from": first}],
    )
    assert listed == {"count": 2, "first_id": 1, "last_id": 2}
    stored = await env.control("GET", f"/messages?peer={-chat['id']}&user={first}")
    assert [m["text"] for m in stored["messages"]] == ["a", "b"]
    state = (await env.http.get("/_sandbox/state")).json()
    assert state["mtproto"]["users"] == 30
    assert state["mtproto"]["keys"] == 31
    assert (await env.http.get("/_sandbox/mtproto/users/404404")).status_code == 404
    bad = await env.http.post("/_sandbox/mtproto/users", json={"phone": "1"})
    assert bad.status_code == 400
    assert "invalid phone" in bad.json()["error"]
    await env.http.post("/_sandbox/reset")
    assert (await env.control("GET", "/users")) == {"users": []}


CHILD = """
import sys, httpx
with httpx.Client(base_url=sys.argv[1], timeout=30) as http:
    with http.stream("POST", "/mtproto/connect", json={"session": sys.argv[2]}) as response:
        for line in response.iter_lines():
            print(line, flush=True)
"""


@pytest.mark.e2e
async def test_killed_process_connection_ends_at_once(env: Env) -> None:
    """SIGKILL closes the process's sockets; the fake must see the disconnect without any
    timeout, or the instance taking the session over would be accused of duplicating it."""
    await env.control("PUT", "/settings", idle_timeout=3600)  # only the socket close counts
    _, session, key_id = await seeded(env)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        env.url,
        session,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_PROXY": "*"},
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        assert json.loads(line)["type"] == "connected"
        assert (await env.log(key_id))["active"] == 1
        child.send_signal(signal.SIGKILL)
        await child.wait()
        await wait_until(
            lambda: env.box.mtproto.conns.report(key_id=key_id)["active"] == 0, timeout=5
        )
        takeover = await env.stream(session)
        log = await env.log(key_id)
        assert log["duplicates"] == 0
        assert log["max_concurrent"] == 1
        await takeover.close()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
