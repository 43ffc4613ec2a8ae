"""The ingest service's composition root."""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from opentelemetry.trace import SpanKind

from switchboard.events.catalog.common import Channel
from switchboard.ingest import normalizer
from switchboard.ingest.settings import IngestSettings
from switchboard.ingest.webhooks import BusUnavailableError, RejectedError, accept_telegram
from switchboard.runtime.accounts import Account, AccountCache, AccountStore
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.consumer import PullWorker
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.http import error
from switchboard.runtime.logging import get_logger, register_secret
from switchboard.runtime.metrics import HTTP_REQUESTS
from switchboard.runtime.service import Runtime
from switchboard.runtime.settings import parse_keyring
from switchboard.runtime.tracing import context_from_headers, inject_headers, tracer

log = get_logger(__name__)


class Body:
    """Reads a request body up to a limit, so an oversized upload is refused, not buffered."""

    @staticmethod
    async def read(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RejectedError(413, "too_large", f"body over {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RejectedError(413, "too_large", f"body over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def create_app(settings: IngestSettings) -> ServiceApp:
    """Build the ingest app; connections are made by its lifespan, never at import."""
    keys = settings.encryption_keys.get_secret_value()
    register_secret(keys)
    keyring = Keyring.from_mapping(parse_keyring(keys))
    caches: dict[str, AccountCache] = {}

    async def start(rt: Runtime) -> None:
        cache = AccountCache(AccountStore(await rt.bus.kv("accounts"), keyring))
        caches["accounts"] = cache
        rt.spawn("accounts-watch", lambda: cache.run(rt.stop))
        await asyncio.wait_for(cache.loaded.wait(), 10)
        if settings.normalizer:
            worker = PullWorker(
                rt.bus,
                normalizer.SPEC,
                lambda m: normalizer.handle_raw(rt.bus, m),
                stop=rt.stop,
                concurrency=settings.normalizer_concurrency,
            )
            rt.spawn("normalizer", worker.run)

    app = service_app(
        service="ingest",
        settings=settings,
        start=start,
        title="Switchboard ingest",
        description="Verified provider webhooks, stored durably in RAW before they are answered.",
    )

    def find_account(channel: Channel, account_id: str) -> Account | None:
        return caches["accounts"].get(channel, account_id)

    async def publish(subject: str, body: bytes, headers: dict[str, str]) -> None:
        await app.runtime.bus.publish_raw(
            subject, body, headers, timeout=settings.publish_timeout_s
        )

    @app.post(
        "/webhooks/telegram/{account}",
        summary="Telegram Bot API webhook",
        responses={
            200: {"description": "stored durably in RAW"},
            400: {"description": "malformed body"},
            401: {"description": "missing or wrong secret token"},
            404: {"description": "unknown account"},
            413: {"description": "body too large"},
            415: {"description": "not application/json"},
            503: {"description": "bus unavailable: retry later"},
        },
    )
    async def telegram_webhook(account: str, request: Request) -> Response:
        with tracer().start_as_current_span(
            "webhook telegram",
            context=context_from_headers(request.headers),
            kind=SpanKind.SERVER,
            attributes={"switchboard.account": account},
        ):
            try:
                body = await Body.read(request, settings.max_body_bytes)
                result = await accept_telegram(
                    account_id=account,
                    headers=request.headers,
                    body=body,
                    find_account=find_account,
                    publish=publish,
                    source=app.runtime.bus.source,
                    trace_headers=inject_headers({}),
                )
            except RejectedError as rej:
                HTTP_REQUESTS.labels("telegram", "POST", str(rej.status)).inc()
                return error(rej.status, rej.code, rej.message)
            except BusUnavailableError as exc:
                HTTP_REQUESTS.labels("telegram", "POST", "503").inc()
                log.warning("RAW publish failed", account=account, error=str(exc))
                return error(503, "bus_unavailable", "could not store the update; retry later")
            HTTP_REQUESTS.labels("telegram", "POST", "200").inc()
            return JSONResponse(result)

    return app
