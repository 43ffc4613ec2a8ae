"""Peers that hold the ingest's connections without finishing a request (slowloris): the
production server (``python -m switchboard.ingest``) answers each 408 and closes it once
``http_read_timeout_s`` has passed, stores nothing of a webhook that never arrived whole,
and goes on answering the providers. Before, uvicorn kept every such connection, and the
task reading it, for as long as the peer liked."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from tests.support.stack import add_telegram_account, service_env
from tests.support.streams import stream_count
from tests.support.telegram import text_update

from switchboard.runtime.embedded import EmbeddedNats, free_port
from switchboard.runtime.testing import ServiceProcess

SECRET = "s3cret-token"
SILENT = 200  # connections that never send a byte


async def _answer(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(60):
        return await reader.read()


async def test_stalled_webhooks_are_408_and_leave_nothing_behind(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    await add_telegram_account(nats_server.url, secret=SECRET)
    env = service_env(
        nats_server.url,
        SWITCHBOARD_HTTP_PORT=str(port := free_port()),
        SWITCHBOARD_HTTP_READ_TIMEOUT_S="2",
    )
    proc = ServiceProcess("switchboard.ingest", env, tmp_path / "ingest.log", port=port).start()
    try:
        await proc.ready(90)
        host = urlsplit(proc.url).hostname
        assert host is not None
        body = json.dumps(text_update(1)).encode()
        head = (
            b"POST /webhooks/telegram/demo HTTP/1.1\r\nhost: x\r\n"
            b"content-type: application/json\r\n"
            b"x-telegram-bot-api-secret-token: " + SECRET.encode() + b"\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        )
        stalled = await asyncio.open_connection(host, port)
        stalled[1].write(head + body[: len(body) // 2])  # and never the rest
        silent = [await asyncio.open_connection(host, port) for _ in range(SILENT)]

        answers = await asyncio.gather(_answer(stalled[0]), *(_answer(r) for r, _ in silent))
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[:3]
        assert b'"code":"request_timeout"' in answers[0]
        for _, writer in (stalled, *silent):
            writer.close()

        async with httpx.AsyncClient(timeout=30) as client:
            whole = await client.post(
                f"{proc.url}/webhooks/telegram/demo",
                content=json.dumps(text_update(2)),
                headers={
                    "X-Telegram-Bot-Api-Secret-Token": SECRET,
                    "Content-Type": "application/json",
                },
            )
        assert whole.status_code == 200
        assert await stream_count(nats_server.url, "RAW") == 1  # the whole one only
    finally:
        proc.stop()
