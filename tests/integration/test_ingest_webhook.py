"""The Telegram webhook's answers: every rejection is a precise 4xx that publishes nothing;
with the bus down the answer is 503 and the provider's retry later succeeds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.support.stack import add_telegram_account, service_env
from tests.support.streams import stream_count
from tests.support.telegram import text_update

from switchboard.ingest.app import create_app
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.embedded import EmbeddedNats
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app

SECRET = "s3cret-token"
GOOD = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


@pytest.fixture
async def ingest(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    for key, value in service_env(
        nats_url, SWITCHBOARD_INGEST_MAX_BODY_BYTES=4096, SWITCHBOARD_INGEST_PUBLISH_TIMEOUT_S=1
    ).items():
        monkeypatch.setenv(key, value)
    await add_telegram_account(nats_url, secret=SECRET)
    async with serve_app(create_app(load_settings(IngestSettings))) as url:
        yield url


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "code"),
    [
        ("demo", {}, json.dumps(text_update(1)), 401, "bad_secret"),
        (
            "demo",
            {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            json.dumps(text_update(1)),
            401,
            "bad_secret",
        ),
        ("nobody", GOOD, json.dumps(text_update(1)), 404, "unknown_account"),
        (
            "demo",
            {**GOOD, "Content-Type": "text/plain"},
            json.dumps(text_update(1)),
            415,
            "unsupported_media_type",
        ),
        ("demo", GOOD, "{not json", 400, "malformed_body"),
        ("demo", GOOD, "[1, 2]", 400, "malformed_body"),
        ("demo", GOOD, json.dumps({"update_id": "7"}), 400, "malformed_body"),
        ("demo", GOOD, json.dumps({"update_id": -1}), 400, "malformed_body"),
        ("demo", GOOD, json.dumps({"update_id": 1, "pad": "x" * 5000}), 413, "too_large"),
    ],
    # Named, not derived from the bodies: an update's date is the time of collection, and
    # test workers collecting a second apart must see the same ids (pytest-xdist).
    ids=[
        "no-secret",
        "wrong-secret",
        "unknown-account",
        "not-json-content-type",
        "not-json",
        "not-an-object",
        "string-update-id",
        "negative-update-id",
        "too-large",
    ],
)
async def test_rejections_are_precise_and_publish_nothing(
    ingest: str,
    nats_url: str,
    path: str,
    headers: dict[str, str],
    body: str,
    status: int,
    code: str,
) -> None:
    hdrs = {"Content-Type": "application/json", **headers}
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{ingest}/webhooks/telegram/{path}", content=body, headers=hdrs)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert r.json()["detail"]
    assert await stream_count(nats_url, "RAW") == 0


async def test_duplicates_store_once(ingest: str, nats_url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(3):
            r = await http.post(
                f"{ingest}/webhooks/telegram/demo", json=text_update(9), headers=GOOD
            )
            assert r.status_code == 200
            assert r.json() == {"ok": True, "id": "tg:demo:9"}
    assert await stream_count(nats_url, "RAW") == 1


async def test_bus_down_gives_503_and_the_retry_succeeds(
    ingest: str, nats_url: str, nats_server: EmbeddedNats | None
) -> None:
    if nats_server is None:
        pytest.skip("needs an embedded server it can stop")  # only with an external NATS URL
    async with httpx.AsyncClient(timeout=10) as http:
        nats_server.stop()
        r = await http.post(f"{ingest}/webhooks/telegram/demo", json=text_update(77), headers=GOOD)
        assert r.status_code == 503
        assert r.json()["code"] == "bus_unavailable"
        ready = await http.get(f"{ingest}/readyz")
        assert ready.status_code == 503
        nats_server.start()

        async def retried() -> bool:
            r = await http.post(
                f"{ingest}/webhooks/telegram/demo", json=text_update(77), headers=GOOD
            )
            return r.status_code == 200

        await eventually(retried, timeout=30, interval=0.3, message="retry accepted")
    assert await stream_count(nats_url, "RAW") == 1


async def test_openapi_lists_exactly_the_webhook_operations_that_answer(ingest: str) -> None:
    """Every documented webhook operation answers as documented (an unknown account is its
    404 problem), and a webhook path the document does not list answers no route."""
    async with httpx.AsyncClient() as http:
        doc = (await http.get(f"{ingest}/openapi.json")).json()
        documented = {
            (path, method)
            for path, ops in doc["paths"].items()
            if path.startswith("/webhooks/")
            for method in ops
        }
        assert {m for _, m in documented} == {"post", "get"}
        for path, method in sorted(documented):
            url = ingest + path.replace("{account}", "nobody").replace("{source}", "nobody")
            r = await http.request(
                method, url, content=b"{}", headers={"Content-Type": "application/json"}
            )
            assert str(r.status_code) in doc["paths"][path][method]["responses"], (path, r.text)
            assert (r.status_code, r.json()["code"]) == (404, "unknown_account"), path
        for path in ("/webhooks/line/nobody", "/webhooks/telegram/nobody/more", "/webhooks/x"):
            r = await http.post(ingest + path, content=b"{}")
            assert (r.status_code, r.json()["code"]) == (404, "not_found"), path
