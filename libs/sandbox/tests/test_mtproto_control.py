"""The fake Telegram's control API (`/_sandbox/mtproto/...`): seeding users, sessions,
groups and messages in bulk, reading them back, the sandbox state, errors and reset."""

from __future__ import annotations

from typing import Any

import httpx

from switchboard.sandbox import Sandbox


async def test_control_api_seeding_and_reset() -> None:
    sandbox = Sandbox()
    transport = httpx.ASGITransport(app=sandbox.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:

        async def control(method: str, path: str, **body: Any) -> Any:
            r = await http.request(method, f"/_sandbox/mtproto{path}", json=body or None)
            assert r.status_code < 300, r.text
            return r.json()

        bulk = await control(
            "POST", "/users/bulk", users=[{"phone": f"1555100{n:04d}", "sessions": 1}
                                          for n in range(30)]
        )  # fmt: skip
        assert len(bulk["users"]) == 30
        assert all(len(item["sessions"]) == 1 for item in bulk["users"])
        first = bulk["users"][0]["user"]["id"]
        extra = await control("POST", f"/users/{first}/sessions")
        user = await control("GET", f"/users/{first}")
        assert {s["key_id"] for s in user["sessions"]} >= {extra["key_id"]}
        chat = await control("POST", "/chats", title="G", members=[first])
        members = await control(
            "POST", f"/peers/{-chat['id']}/members", add=[bulk["users"][1]["user"]["id"]]
        )
        assert len(members["members"]) == 2
        listed = await control(
            "POST",
            "/messages/bulk",
            peer=str(-chat["id"]),
            messages=[{"text": "a", "from": first}, {"text": "b", "from": first}],
        )
        assert listed == {"count": 2, "first_id": 1, "last_id": 2}
        stored = await control("GET", f"/messages?peer={-chat['id']}&user={first}")
        assert [m["text"] for m in stored["messages"]] == ["a", "b"]
        state = (await http.get("/_sandbox/state")).json()
        assert state["mtproto"]["users"] == 30
        assert state["mtproto"]["keys"] == 31
        assert (await http.get("/_sandbox/mtproto/users/404404")).status_code == 404
        bad = await http.post("/_sandbox/mtproto/users", json={"phone": "1"})
        assert bad.status_code == 400
        assert "invalid phone" in bad.json()["error"]
        settings = await http.put("/_sandbox/mtproto/settings", json={"idle_timeout": 3})
        assert settings.status_code == 400  # connections live as long as their socket
        assert (await http.get("/mtproto/connect")).status_code == 404  # no HTTP client API
        await http.post("/_sandbox/reset")
        assert (await control("GET", "/users")) == {"users": []}
    await sandbox.aclose()


async def test_a_reader_reads_its_chat_through_the_control_api() -> None:
    sandbox = Sandbox()
    transport = httpx.ASGITransport(app=sandbox.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        base = "/_sandbox/mtproto"
        for phone, name in (("15550200001", "seller_rd"), ("15550200002", "buyer_rd")):
            r = await http.post(f"{base}/users", json={"phone": phone, "username": name})
            assert r.status_code == 201, r.text
        r = await http.post(
            f"{base}/messages", json={"from": "@seller_rd", "peer": "@buyer_rd", "text": "hi"}
        )
        assert r.status_code < 300, r.text
        r = await http.post(f"{base}/wire/read", json={"reader": "@buyer_rd", "peer": "@seller_rd"})
        assert r.status_code == 200, r.text
        assert r.json()["max_id"] >= 1  # everything the seller wrote, by default
        r = await http.post(f"{base}/wire/read", json={"reader": "@nobody", "peer": "@seller_rd"})
        assert r.status_code == 404
        bad = {"reader": "@buyer_rd", "peer": "@seller_rd", "max_id": -1}
        r = await http.post(f"{base}/wire/read", json=bad)
        assert r.status_code == 400


async def test_an_invite_link_is_made_for_a_group_through_the_control_api() -> None:
    sandbox = Sandbox()
    transport = httpx.ASGITransport(app=sandbox.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        base = "/_sandbox/mtproto"
        r = await http.post(f"{base}/users", json={"phone": "15550200011", "username": "own_iv"})
        assert r.status_code == 201, r.text
        r = await http.post(f"{base}/channels", json={"title": "VIP", "creator": "@own_iv"})
        channel = r.json()
        r = await http.post(f"{base}/peers/{channel['marked_id']}/invites",
                            json={"request_needed": True})  # fmt: skip
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["link"] == f"https://t.me/+{made['hash']}"
        assert sandbox.mtproto.world.invite(made["hash"])[1] is True
        r = await http.post(f"{base}/peers/@own_iv/invites", json={})
        assert r.status_code == 400, r.text
