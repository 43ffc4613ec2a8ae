"""The traffic generator: real-shaped updates in the requested mix, through the webhook path."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from switchboard.sandbox import ManualClock, Sandbox
from switchboard.sandbox.cli import main
from switchboard.sandbox.telegram.traffic import DEFAULT_MIX
from switchboard.sandbox.testing import WebhookReceiver, serve, wait_until

from .conftest import TelegramEnv


def check_user(user: dict[str, Any]) -> None:
    assert isinstance(user["id"], int)
    assert user["id"] > 0
    assert user["is_bot"] is False
    assert user["first_name"]
    assert user["language_code"]


def check_file(media: dict[str, Any]) -> None:
    assert media["file_id"]
    assert media["file_unique_id"]
    assert media["file_size"] > 0


def check_message(message: dict[str, Any]) -> str:
    """Validate a user message and return its content kind."""
    assert isinstance(message["message_id"], int)
    assert isinstance(message["date"], int)
    check_user(message["from"])
    assert message["chat"]["id"] == message["from"]["id"]
    assert message["chat"]["type"] == "private"
    if "photo" in message:
        for size in message["photo"]:
            check_file(size)
            assert size["width"] > 0
            assert size["height"] > 0
        return "photo"
    if "voice" in message:
        check_file(message["voice"])
        assert message["voice"]["duration"] > 0
        assert message["voice"]["mime_type"] == "audio/ogg"
        return "voice"
    if "document" in message:
        check_file(message["document"])
        assert message["document"]["file_name"]
        assert message["document"]["mime_type"]
        return "document"
    if "sticker" in message:
        check_file(message["sticker"])
        assert message["sticker"]["emoji"]
        return "sticker"
    if "video" in message:
        check_file(message["video"])
        assert message["video"]["duration"] > 0
        return "video"
    if "location" in message:
        assert -90 <= message["location"]["latitude"] <= 90
        return "location"
    if "contact" in message:
        assert message["contact"]["phone_number"].startswith("+")
        return "contact"
    assert message["text"]
    return "text"


def check_update(kind: str, update: dict[str, Any]) -> None:
    assert isinstance(update["update_id"], int)
    assert len(update) == 2, "exactly one payload field besides update_id"
    if kind == "edited_message":
        assert update["edited_message"]["edit_date"] >= update["edited_message"]["date"]
        assert check_message(update["edited_message"]) == "text"
    elif kind == "callback_query":
        query = update["callback_query"]
        check_user(query["from"])
        assert query["id"]
        assert query["chat_instance"]
        assert query["data"]
        assert query["message"]["from"]["is_bot"] is True
    elif kind == "my_chat_member":
        member = update["my_chat_member"]
        check_user(member["from"])
        assert member["old_chat_member"]["status"] == "member"
        assert member["new_chat_member"]["status"] == "kicked"
    else:
        assert check_message(update["message"]) == kind


async def test_generated_mix_has_the_requested_count_of_valid_updates(tg: TelegramEnv) -> None:
    produced = await tg.sandbox.telegram.generate(tg.bot, count=300, seed=11)
    assert len(produced) == 300
    kinds = Counter(item.kind for item in produced)
    assert set(kinds) == set(DEFAULT_MIX)
    assert kinds["text"] > kinds["photo"] > 0
    for item in produced:
        check_update(item.kind, item.update)
    ids = [item.update["update_id"] for item in produced]
    assert ids == list(range(ids[0], ids[0] + 300))
    assert len(tg.sandbox.telegram.generated_updates(tg.bot)) == 300
    assert (await tg.call("getWebhookInfo")).json()["result"]["pending_update_count"] == 300


async def test_custom_mix_is_respected_and_seeded_runs_repeat() -> None:
    async def run() -> list[Any]:
        box = Sandbox(clock=ManualClock())
        box.telegram.add_bot("777:Other")
        produced = await box.telegram.generate("777", count=50, mix={"text": 1, "photo": 1}, seed=5)
        await box.aclose()
        return [(item.kind, item.update) for item in produced]

    first, again = await run(), await run()
    assert {kind for kind, _ in first} == {"text", "photo"}
    assert first == again


async def test_generated_updates_reach_the_webhook_in_order(tg: TelegramEnv) -> None:
    receiver = WebhookReceiver()
    async with serve(receiver.app) as hook:
        await tg.call("setWebhook", url=f"{hook}/tg", secret_token="tok")
        produced = await tg.sandbox.telegram.generate(tg.bot, count=60, rate=500, seed=2)
        await wait_until(lambda: len(receiver.received) == 60, timeout=10)
    assert receiver.bodies == [item.update for item in produced]


async def test_blocking_user_makes_later_sends_fail(tg: TelegramEnv) -> None:
    produced = await tg.sandbox.telegram.generate(tg.bot, count=3, mix={"my_chat_member": 1})
    user_id = produced[0].update["my_chat_member"]["chat"]["id"]
    response = await tg.call("sendMessage", chat_id=user_id, text="come back")
    assert response.status_code == 403
    assert response.json()["description"] == "Forbidden: bot was blocked by the user"


async def test_received_files_are_reusable_and_downloadable(tg: TelegramEnv) -> None:
    produced = await tg.sandbox.telegram.generate(tg.bot, count=1, mix={"document": 1})
    message = produced[0].update["message"]
    file_id = message["document"]["file_id"]
    file = (await tg.call("getFile", file_id=file_id)).json()["result"]
    download = await tg.http.get(f"/file/bot{tg.bot.token}/{file['file_path']}")
    assert len(download.content) == message["document"]["file_size"]
    resent = await tg.call("sendDocument", chat_id=message["chat"]["id"], document=file_id)
    assert resent.json()["result"]["document"]["file_id"] == file_id
    reply = await tg.call(
        "sendMessage",
        chat_id=message["chat"]["id"],
        text="got it",
        reply_parameters={"message_id": message["message_id"]},
    )
    assert reply.json()["result"]["reply_to_message"]["message_id"] == message["message_id"]


async def test_rate_paces_generation(tg: TelegramEnv) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await tg.sandbox.telegram.generate(tg.bot, count=21, rate=100)
    assert loop.time() - started >= 0.2


async def test_traffic_job_over_the_control_api(tg: TelegramEnv) -> None:
    started = await tg.http.post(
        "/_sandbox/telegram/traffic",
        json={"bot": "test_shop_bot", "count": 40, "rate": 1000, "mix": {"text": 3, "voice": 1}},
    )
    assert started.status_code == 202
    job_id = started.json()["id"]

    async def done() -> bool:
        job = (await tg.http.get(f"/_sandbox/telegram/traffic/{job_id}")).json()
        return bool(job["status"] == "done")

    await wait_until(done, timeout=10)
    job = (await tg.http.get(f"/_sandbox/telegram/traffic/{job_id}")).json()
    assert job["produced"] == 40
    assert sum(job["by_kind"].values()) == 40
    generated = (
        await tg.http.get("/_sandbox/telegram/generated", params={"bot": tg.bot.id})
    ).json()
    assert generated["count"] == 40
    bad = await tg.http.post(
        "/_sandbox/telegram/traffic",
        json={"bot": tg.bot.token, "count": 1, "mix": {"telepathy": 1}},
    )
    assert bad.status_code == 400
    assert "unknown update kinds" in bad.json()["error"]


async def test_cli_traffic_drives_a_running_sandbox(tg: TelegramEnv) -> None:
    code = await asyncio.to_thread(
        main,
        [
            "traffic",
            "--url",
            tg.url,
            "--bot",
            tg.bot.token,
            "--rate",
            "2000",
            "--count",
            "25",
            "--mix",
            "text=1,sticker=1",
            "--seed",
            "9",
        ],
    )
    assert code == 0
    kinds = {item.kind for item in tg.sandbox.telegram.generated_updates(tg.bot)}
    assert len(tg.sandbox.telegram.generated_updates(tg.bot)) == 25
    assert kinds <= {"text", "sticker"}
    missing = await asyncio.to_thread(
        main, ["traffic", "--url", tg.url, "--bot", "nobody", "--count", "1"]
    )
    assert missing == 1
