"""The walking skeleton as production runs it: ingest and crm as separate processes on real
NATS and Postgres; a CRM SIGKILLed mid-stream comes back to exactly the same rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from tests.support.db import create_database, table_checksum
from tests.support.stack import API_KEY, add_telegram_account, service_env
from tests.support.telegram import text_update

from switchboard.runtime.embedded import free_port
from switchboard.runtime.testing import ServiceProcess, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SECRET = "s3cret-token"
N = 400


def _service(name: str, env: dict[str, str], tmp: Path, tag: str = "") -> ServiceProcess:
    port = free_port()
    env = {**env, f"SWITCHBOARD_{name.upper()}_HTTP_PORT": str(port)}
    return ServiceProcess(f"switchboard.{name}", env, tmp / f"{name}{tag}.log", port=port)


async def _messages(crm: ServiceProcess) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(
            f"{crm.url}/v1/conversations?limit=500", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        if r.status_code != 200:
            return -1
        return sum(c["message_count"] for c in r.json()["items"])


async def test_crm_killed_mid_stream_converges_to_identical_rows(
    nats_url: str, postgres_url: str, postgres_server: str, tmp_path: Path
) -> None:
    await add_telegram_account(nats_url, secret=SECRET)
    env = service_env(nats_url, postgres_url, SWITCHBOARD_CRM_PROJECTION_BATCH=7)
    ingest = _service("ingest", env, tmp_path).start()
    crm = _service("crm", env, tmp_path)
    try:
        await ingest.ready()
        async with httpx.AsyncClient(timeout=10) as http:
            sem = asyncio.Semaphore(16)

            async def post(i: int) -> int:
                update = text_update(5000 + i, f"message {i}", chat_id=100 + i % 25)
                async with sem:
                    r = await http.post(
                        f"{ingest.url}/webhooks/telegram/demo",
                        json=update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                    )
                return r.status_code

            statuses = await asyncio.gather(*(post(i) for i in range(N)))
            assert set(statuses) == {200}
            # the same updates again: accepted (200) but no second message anywhere
            again = await asyncio.gather(*(post(i) for i in range(0, N, 10)))
            assert set(again) == {200}

        crm.start()
        await crm.ready()
        await eventually(lambda: _ok(_messages(crm), lambda n: n > 0), message="projecting")
        crm.kill()  # mid-stream: batches of 7 cannot all be done yet
        crm.start()
        await crm.ready()
        await eventually(
            lambda: _ok(_messages(crm), lambda n: n == N), timeout=60, message=f"{N} messages"
        )
    finally:
        crm.stop()
        ingest.stop()

    # An uninterrupted projection of the same streams into a fresh database.
    reference_db = await create_database(postgres_server)
    reference = _service("crm", service_env(nats_url, reference_db), tmp_path, "-ref").start()
    try:
        await reference.ready()
        await eventually(
            lambda: _ok(_messages(reference), lambda n: n == N),
            timeout=60,
            message="reference projection",
        )
    finally:
        assert reference.stop() == 0, reference.tail()
    for table, order in (("crm.messages", "event_id"), ("crm.conversations", "id")):
        assert await table_checksum(postgres_url, table, order) == await table_checksum(
            reference_db, table, order
        ), table


async def _ok(value: asyncio.Future[int] | object, pred: object) -> bool:
    n = await value  # type: ignore[misc]
    return bool(pred(n))  # type: ignore[operator]
