"""The combined sandbox app, demo mode, the control API, helpers and the CLI server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from switchboard.sandbox import DEMO_TOKEN, Sandbox, SandboxConfig, create_app
from switchboard.sandbox.testing import serve, serve_in_thread

from .conftest import TOKEN, TelegramEnv


async def test_combined_app_mounts_telegram_under_its_prefix() -> None:
    box = Sandbox(SandboxConfig(demo=True))
    async with serve(box.app()) as url, httpx.AsyncClient(base_url=url) as http:
        me = (await http.get(f"/telegram/bot{DEMO_TOKEN}/getMe")).json()["result"]
        assert me["username"] == "switchboard_demo_bot"
        assert (await http.get(f"/bot{DEMO_TOKEN}/getMe")).status_code == 404
        health = (await http.get("/_sandbox/health")).json()
        assert health == {
            "ok": True,
            "providers": ["metacapi", "mtproto", "sendpulse", "telegram", "viber", "whatsapp"],
        }
        sent = await http.post(
            f"/telegram/bot{DEMO_TOKEN}/sendMessage", json={"chat_id": 1, "text": "hi"}
        )
        assert sent.json()["ok"] is True
        file = await http.get(f"/telegram/file/bot{DEMO_TOKEN}/photos/none.jpg")
        assert file.status_code == 404
    assert box.recorder.requests(provider="telegram", account="100000001")


def test_create_app_exposes_the_sandbox_handle() -> None:
    app = create_app(SandboxConfig(demo=True))
    sandbox: Sandbox = app.state.sandbox
    assert sandbox.telegram.bot("switchboard_demo_bot").token == DEMO_TOKEN


async def test_reset_forgets_everything_but_demo_accounts() -> None:
    box = Sandbox(SandboxConfig(demo=True))
    box.telegram.add_bot(TOKEN)
    box.set_fault("telegram", error_rate=1.0)
    async with serve(box.app()) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get(f"/telegram/bot{TOKEN}/getMe")).status_code == 500
        assert (await http.post("/_sandbox/reset")).json() == {"reset": True}
        assert (await http.get(f"/telegram/bot{TOKEN}/getMe")).status_code == 401
        assert (await http.get(f"/telegram/bot{DEMO_TOKEN}/getMe")).status_code == 200
        assert [r.status for r in box.recorder.requests()] == [401, 200]


async def test_control_api_configures_bots_and_chats(tg: TelegramEnv) -> None:
    created = await tg.http.post(
        "/_sandbox/telegram/bots",
        json={"token": "4242:NewBotToken", "username": "new_bot", "first_name": "New"},
    )
    assert created.status_code == 201
    chat = await tg.http.post(
        "/_sandbox/telegram/bots/new_bot/chats",
        json={"id": -1005555555555, "type": "channel", "title": "Deals", "username": "deals"},
    )
    assert chat.json()["type"] == "channel"
    sent = await tg.call("sendMessage", token="4242:NewBotToken", chat_id="@deals", text="x")
    assert sent.json()["result"]["chat"]["title"] == "Deals"
    blocked = await tg.http.post(
        "/_sandbox/telegram/bots/4242/chats/-1005555555555/block", json={"blocked": True}
    )
    assert blocked.json()["blocked"] is True
    refused = await tg.call("sendMessage", token="4242:NewBotToken", chat_id="@deals", text="x")
    assert refused.json()["description"] == "Forbidden: bot is not a member of the channel chat"
    bot = (await tg.http.get("/_sandbox/telegram/bots/4242:NewBotToken")).json()
    assert bot["me"]["username"] == "new_bot"
    assert len(bot["chats"]) == 1
    messages = (await tg.http.get("/_sandbox/telegram/bots/new_bot/messages")).json()
    assert [m["text"] for m in messages["messages"]] == ["x"]
    missing = await tg.http.get("/_sandbox/telegram/bots/nobody")
    assert missing.status_code == 404
    bad = await tg.http.post("/_sandbox/telegram/bots", json={"token": "no colon"})
    assert bad.status_code == 400


async def test_control_api_enqueues_updates_and_lists_records(tg: TelegramEnv) -> None:
    queued = await tg.http.post(
        f"/_sandbox/telegram/bots/{tg.bot.id}/updates",
        json={
            "update": {
                "message": {
                    "message_id": 1,
                    "date": 1,
                    "text": "hi",
                    "chat": {"id": 1, "type": "private", "first_name": "A"},
                }
            }
        },
    )
    assert queued.status_code == 202
    assert queued.json()["queued"] is True
    await tg.call("sendMessage", chat_id=3, text="x")
    records = (
        await tg.http.get(
            "/_sandbox/requests",
            params={"provider": "telegram", "account": TOKEN, "method": "sendMessage"},
        )
    ).json()
    assert records["count"] == 1
    assert records["requests"][0]["chat"] == "3"
    state = (await tg.http.get("/_sandbox/state")).json()
    assert state["telegram"]["bots"][0]["pending_update_count"] == 1
    settings = await tg.http.put(
        "/_sandbox/telegram/settings",
        json={"strict_chats": True, "webhook_retry": {"initial": 0.5}},
    )
    assert settings.json()["strict_chats"] is True
    assert tg.bot.updates.policy.initial == 0.5


async def test_requests_filter_by_time_and_limit(tg: TelegramEnv) -> None:
    for chat in (1, 2, 3):
        await tg.call("sendMessage", chat_id=chat, text="x")
    records = tg.sandbox.recorder.requests()
    since = records[1].at
    listed = (await tg.http.get("/_sandbox/requests", params={"since": since})).json()
    assert [r["chat"] for r in listed["requests"]] == ["2", "3"]
    last = (await tg.http.get("/_sandbox/requests", params={"limit": 1})).json()
    assert [r["chat"] for r in last["requests"]] == ["3"]
    await tg.http.delete("/_sandbox/requests")
    assert tg.sandbox.recorder.requests() == []


@pytest.mark.parametrize(
    ("path", "query", "error"),
    [
        ("/_sandbox/requests", {"status": "x"}, "status must be an integer"),
        ("/_sandbox/requests", {"since": "x"}, "since must be a number"),
        ("/_sandbox/requests", {"ok": "maybe"}, "ok must be true or false"),
        ("/_sandbox/deliveries", {"after": "x"}, "after must be an integer"),
        ("/_sandbox/deliveries", {"ok": "maybe"}, "ok must be true or false"),
    ],
)
async def test_a_bad_record_filter_is_a_400_naming_it(
    tg: TelegramEnv, path: str, query: dict[str, str], error: str
) -> None:
    response = await tg.http.get(path, params=query)
    assert (response.status_code, response.json()) == (400, {"error": error})


async def test_deliveries_filter_by_url_and_outcome(tg: TelegramEnv) -> None:
    recorder = tg.sandbox.recorder
    for url, ok in (("http://a.test/", True), ("http://b.test/", False)):
        recorder.add_delivery(
            provider="telegram",
            account="1",
            url=url,
            ref=None,
            attempt=1,
            status=200 if ok else 500,
            ok=ok,
            error=None,
            started_mono=recorder.clock.monotonic(),
        )
    failed = (await tg.http.get("/_sandbox/deliveries", params={"ok": "false"})).json()
    assert [d["url"] for d in failed["deliveries"]] == ["http://b.test/"]
    by_url = (await tg.http.get("/_sandbox/deliveries", params={"url": "http://a.test/"})).json()
    assert [d["ok"] for d in by_url["deliveries"]] == [True]


def test_serve_in_thread_for_synchronous_callers() -> None:
    box = Sandbox(SandboxConfig(demo=True))
    with serve_in_thread(box.provider_app("telegram")) as url:
        response = httpx.get(f"{url}/bot{DEMO_TOKEN}/getMe", trust_env=False)
    assert response.json()["result"]["id"] == 100000001


def test_serve_in_thread_raises_a_failed_start_in_the_caller() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"), serve_in_thread(Sandbox().app(), port=port):
            pass


def test_cli_serves_the_demo_bot() -> None:
    with socket.socket() as sock, socket.socket() as wire_sock:
        sock.bind(("127.0.0.1", 0))
        wire_sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        wire_port = wire_sock.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    script = Path(sys.executable).parent / "switchboard-sandbox"
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from switchboard.sandbox.cli import main; main()"]
    )
    process = subprocess.Popen(
        [
            *command,
            "serve",
            "--port",
            str(port),
            "--mtproto-port",
            str(wire_port),
            "--demo",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/telegram/bot{DEMO_TOKEN}/getMe", trust_env=False
                )
                break
            except httpx.TransportError:
                assert process.poll() is None, "server exited"
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.05)
        assert response.json()["result"]["username"] == "switchboard_demo_bot"
        server = httpx.get(f"http://127.0.0.1:{port}/mtproto/server", trust_env=False).json()
        assert (server["host"], server["port"]) == ("127.0.0.1", wire_port)
        with socket.create_connection(("127.0.0.1", wire_port), timeout=5):
            pass  # the MTProto server listens where the descriptor says
    finally:
        process.terminate()
        process.wait(timeout=10)
