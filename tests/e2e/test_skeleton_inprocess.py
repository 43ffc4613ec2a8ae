"""One Telegram message from webhook to the CRM API, on real NATS and Postgres, with the
services running in-process (fast path; the process-level test kills real processes)."""

from __future__ import annotations

import httpx
import pytest
from tests.support.stack import API_KEY, OTHER_KEY, add_telegram_account, service_env
from tests.support.telegram import text_update

from switchboard.crm.app import create_app as create_crm
from switchboard.crm.settings import CrmSettings
from switchboard.ingest.app import create_app as create_ingest
from switchboard.ingest.settings import IngestSettings
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import eventually, serve_app

pytestmark = pytest.mark.e2e
SECRET = "s3cret-token"


async def test_webhook_to_crm_api(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in service_env(nats_url, postgres_url).items():
        monkeypatch.setenv(key, value)
    await add_telegram_account(nats_url, secret=SECRET)
    ingest = create_ingest(load_settings(IngestSettings))
    crm = create_crm(load_settings(CrmSettings))
    async with (
        serve_app(ingest) as ingest_url,
        serve_app(crm) as crm_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        update = text_update(1001, "I would like a quote")
        hook = f"{ingest_url}/webhooks/telegram/demo"
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        first = await http.post(hook, json=update, headers=headers)
        assert first.status_code == 200, first.text
        again = await http.post(hook, json=update, headers=headers)
        assert again.status_code == 200
        wrong = await http.post(
            hook, json=text_update(1002), headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
        )
        assert wrong.status_code == 401
        assert wrong.json()["code"] == "bad_secret"

        auth = {"Authorization": f"Bearer {API_KEY}"}

        async def conversation() -> dict[str, object] | None:
            r = await http.get(f"{crm_url}/v1/conversations", headers=auth)
            items = r.json()["items"]
            return items[0] if items and items[0]["message_count"] >= 1 else None

        conv = await eventually(conversation, message="conversation visible")
        msgs = await http.get(f"{crm_url}/v1/conversations/{conv['id']}/messages", headers=auth)
        body = msgs.json()
        assert [m["text"] for m in body["items"]] == ["I would like a quote"]
        assert conv["message_count"] == 1  # the duplicate POST changed nothing

        other = await http.get(
            f"{crm_url}/v1/conversations", headers={"Authorization": f"Bearer {OTHER_KEY}"}
        )
        assert other.json()["items"] == []
        denied = await http.get(f"{crm_url}/v1/conversations")
        assert denied.status_code == 401


async def test_trace_continues_from_webhook_to_normalizer_and_projection(
    nats_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from switchboard.runtime.tracing import configure_tracing

    exporter = InMemorySpanExporter()
    provider = configure_tracing("test", "t1", exporter=exporter)
    for key, value in service_env(nats_url, postgres_url).items():
        monkeypatch.setenv(key, value)
    await add_telegram_account(nats_url, secret=SECRET)
    ingest = create_ingest(load_settings(IngestSettings))
    crm = create_crm(load_settings(CrmSettings))
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with (
        serve_app(ingest) as ingest_url,
        serve_app(crm) as crm_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        r = await http.post(
            f"{ingest_url}/webhooks/telegram/demo",
            json=text_update(3001),
            headers={
                "X-Telegram-Bot-Api-Secret-Token": SECRET,
                "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01",
            },
        )
        assert r.status_code == 200

        async def visible() -> bool:
            r = await http.get(
                f"{crm_url}/v1/conversations", headers={"Authorization": f"Bearer {API_KEY}"}
            )
            return bool(r.json()["items"])

        await eventually(visible)
    provider.force_flush()
    spans = exporter.get_finished_spans()
    trace_id = int(caller_trace, 16)
    webhook = next(s for s in spans if s.name == "webhook telegram")
    assert webhook.kind is SpanKind.SERVER
    assert webhook.context.trace_id == trace_id  # continues the provider's own trace
    consume = next(s for s in spans if s.name == "consume ingest-normalizer")
    assert consume.context.trace_id == trace_id
    publish = next(s for s in spans if s.name == "publish conv.message_received")
    assert publish.context.trace_id == trace_id
    project = next(s for s in spans if s.name == "project conversations")
    assert trace_id in {link.context.trace_id for link in project.links}
