"""The CRM's rules for a user account's file: the command it asks the gateway, and the
HTTP answer each of the gateway's answers becomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from starlette.responses import Response

from switchboard.crm.attachments import TELEGRAM_USER_DOWNLOAD, Attachment, download_limit
from switchboard.crm.user_files import fetch, fetch_command, refusal
from switchboard.events.catalog.mtproto import MediaFetched
from switchboard.runtime.bus import Bus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_the_command_names_the_session_chat_message_and_where_to_store() -> None:
    found = {"account": "sales-1", "chat_id": "555000111", "provider_message_id": "42"}
    cmd = fetch_command(found, "inbound/a/b/0", 1000, 30.0, NOW)
    assert (cmd.session_id, cmd.chat_id, cmd.message_id) == ("sales-1", "555000111", 42)
    assert (cmd.object_key, cmd.max_bytes) == ("inbound/a/b/0", 1000)
    assert cmd.deadline == NOW + timedelta(seconds=30)
    assert cmd.subject() == "cmd.mtproto.fetch_media.v1.sales-1"


def test_a_user_account_downloads_up_to_telegrams_user_limit() -> None:
    assert download_limit("mtproto", "document") == TELEGRAM_USER_DOWNLOAD == 2000 * 1024 * 1024


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (MediaFetched(status="too_large", size=5000), 413, "file_too_large"),
        (MediaFetched(status="not_found", error_code="no_file"), 502, "file_gone"),
        (MediaFetched(status="unusable", error_code="unknown_account"), 502, "account_unavailable"),
        (
            MediaFetched(status="refused", error_code="FILE_REFERENCE_EXPIRED"),
            502,
            "provider_refused",
        ),
        (MediaFetched(status="flood_wait", retry_after=7.2), 503, "gateway_busy"),
        (MediaFetched(status="retry", error_code="store_failed"), 503, "gateway_busy"),
    ],
)
def test_each_refusal_is_a_precise_problem(answer: MediaFetched, status: int, code: str) -> None:
    response = refusal(answer, "sales-1")
    assert response is not None
    assert response.status_code == status
    assert json.loads(bytes(response.body))["code"] == code


def test_a_flood_wait_says_when_to_come_back() -> None:
    response = refusal(MediaFetched(status="flood_wait", retry_after=7.2), "sales-1")
    assert response is not None
    assert response.headers["Retry-After"] == "8"


def test_a_stored_file_is_no_refusal() -> None:
    stored = MediaFetched(status="stored", object_key="k", size=3)
    assert refusal(stored, "sales-1") is None


async def _fetch(nats_url: str, account: str, declared_size: int) -> Response:
    """Fetch a photo of ``account``'s chat (limit 1000 bytes, half a second to answer)."""
    found = {"account": account, "chat_id": "555", "provider_message_id": "7"}
    attachment = Attachment(index=0, kind="photo", file_id="photo:1:1", file_size=declared_size)
    bus = await Bus.connect(nats_url, name="test-user-files")
    try:
        await bus.provision()
        response = await fetch(bus, "demo", found, attachment, "inbound/a/b/0", 1000, 0.5)
    finally:
        await bus.close()
    assert response is not None
    return response


async def test_no_gateway_answering_is_a_503_with_retry_after(nats_url: str) -> None:
    response = await _fetch(nats_url, "nobody-holds", 10)
    assert response.status_code == 503
    assert json.loads(bytes(response.body))["code"] == "gateway_unavailable"
    assert response.headers["Retry-After"] == "5"


async def test_a_declared_size_over_the_limit_is_413_without_asking(nats_url: str) -> None:
    response = await _fetch(nats_url, "s", 1001)
    assert response.status_code == 413
