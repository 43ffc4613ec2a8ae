"""Oversized input against a NATS server with default settings (``max_payload`` 1 MB,
headers included). A verified webhook just under 1 MiB used to reach the server, which
answered by closing the connection; nats-py does not reconnect after that, so every later
webhook got 503 while ``/healthz`` said ok. Now the body limit comes from the server's
``max_payload``, the bus refuses an oversized publish itself, and a connection closed for
good fails ``/healthz`` and ends the process with a non-zero status."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.support.stack import add_telegram_account, service_env
from tests.support.streams import stream_count
from tests.support.telegram import text_update

from switchboard.ingest.app import create_app
from switchboard.ingest.settings import IngestSettings
from switchboard.ingest.webhooks import RAW_HEADER_ROOM, body_limit
from switchboard.runtime.bus import Bus, PayloadTooLargeError
from switchboard.runtime.embedded import EmbeddedNats, free_port
from switchboard.runtime.service import EXIT_CONNECTION_LOST
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import ServiceProcess, eventually, serve_app

SECRET = "s3cret-token"
GOOD = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
DEFAULT_MAX_PAYLOAD = 1024 * 1024  # nats-server's default


def _update(update_id: int, size: int) -> bytes:
    """A valid Telegram update padded to exactly ``size`` bytes."""
    body = json.dumps({**text_update(update_id), "pad": ""})
    return json.dumps({**text_update(update_id), "pad": "x" * (size - len(body))}).encode()


@pytest.fixture
async def ingest(
    nats_default_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[str]:
    # The ingest's own setting (1 MiB) is above what the server can carry.
    for key, value in service_env(nats_default_server.url).items():
        monkeypatch.setenv(key, value)
    await add_telegram_account(nats_default_server.url, secret=SECRET)
    async with serve_app(create_app(load_settings(IngestSettings))) as url:
        yield url


def test_the_body_limit_leaves_room_for_headers() -> None:
    assert body_limit(1024 * 1024, DEFAULT_MAX_PAYLOAD) == DEFAULT_MAX_PAYLOAD - RAW_HEADER_ROOM
    assert body_limit(4096, DEFAULT_MAX_PAYLOAD) == 4096  # a smaller setting wins
    assert body_limit(1024 * 1024, 8 * 1024 * 1024) == 1024 * 1024


async def test_an_oversized_webhook_is_413_and_the_next_one_is_stored(
    ingest: str, nats_default_server: EmbeddedNats
) -> None:
    limit = body_limit(1024 * 1024, DEFAULT_MAX_PAYLOAD)
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{ingest}/webhooks/telegram/demo"
        # just under 1 MiB: within the service's setting, over what NATS carries
        too_big = await client.post(url, content=_update(1, 1024 * 1024 - 100), headers=GOOD)
        assert too_big.status_code == 413
        over = await client.post(url, content=_update(2, limit + 1), headers=GOOD)
        assert over.status_code == 413
        at_limit = await client.post(url, content=_update(3, limit), headers=GOOD)
        assert at_limit.status_code == 200
        small = await client.post(url, content=_update(4, 500), headers=GOOD)
        assert small.status_code == 200
        assert (await client.get(f"{ingest}/healthz")).status_code == 200
        assert (await client.get(f"{ingest}/readyz")).status_code == 200
    assert await stream_count(nats_default_server.url, "RAW") == 2


async def test_the_bus_refuses_a_publish_over_max_payload_and_stays_connected(
    nats_default_server: EmbeddedNats,
) -> None:
    bus = await Bus.connect(nats_default_server.url, name="t")
    try:
        await bus.provision()
        # the body alone fits (nats-py's own check passes); with its headers it does not
        body = b"x" * (bus.max_payload - 10)
        with pytest.raises(PayloadTooLargeError):
            await bus.publish_raw("raw.telegram.v1.demo", body, {"Nats-Msg-Id": "big"})
        await bus.publish_raw("raw.telegram.v1.demo", b"{}", {"Nats-Msg-Id": "small"})
        assert bus.nc.is_connected
        assert not bus.lost
    finally:
        await bus.close()


async def test_a_connection_closed_for_good_fails_healthz(
    ingest: str, nats_default_server: EmbeddedNats
) -> None:
    """The server's limit is lowered after ingest connected (an operator's reload): the
    client still knows the old one, sends 100 KB, and the server closes the connection."""
    nats_default_server.max_payload = "64KB"
    nats_default_server.reload()
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{ingest}/webhooks/telegram/demo"
        lost = await client.post(url, content=_update(1, 100_000), headers=GOOD)
        assert lost.status_code == 503

        async def dead() -> bool:
            return (await client.get(f"{ingest}/healthz")).status_code == 503

        await eventually(dead, message="/healthz reports the lost connection")
        assert (await client.get(f"{ingest}/readyz")).status_code == 503


async def test_a_connection_closed_for_good_ends_the_process(
    nats_default_server: EmbeddedNats, tmp_path: Path
) -> None:
    await add_telegram_account(nats_default_server.url, secret=SECRET)
    env = service_env(nats_default_server.url, SWITCHBOARD_HTTP_PORT=str(port := free_port()))
    proc = ServiceProcess("switchboard.ingest", env, tmp_path / "ingest.log", port=port).start()
    try:
        await proc.ready(90)
        nats_default_server.max_payload = "64KB"
        nats_default_server.reload()
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{proc.url}/webhooks/telegram/demo", content=_update(1, 100_000), headers=GOOD
            )
        assert response.status_code == 503
        assert proc.proc is not None

        async def exited() -> int | None:
            assert proc.proc is not None
            return proc.proc.poll()

        status = await eventually(exited, timeout=60, message="the process exits")
        assert status == EXIT_CONNECTION_LOST, proc.tail()
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)
