"""The outbound service's composition root: the send worker and the HTTP API."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import httpx
from fastapi import Body, Depends, Header, Request
from starlette.responses import JSONResponse, Response

from switchboard.events.catalog.outbound import SendMessage
from switchboard.outbound.attempts import Attempts
from switchboard.outbound.breaker import Breakers
from switchboard.outbound.providers import messaging_clients
from switchboard.outbound.ratelimit import SharedLimiter
from switchboard.outbound.sender import Sender, SendPolicy
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime.accounts import AccountCache, AccountStore
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.auth import ApiKeyAuth
from switchboard.runtime.consumer import ConsumerSpec, PullWorker
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.http import error
from switchboard.runtime.logging import register_secret
from switchboard.runtime.service import Runtime
from switchboard.runtime.settings import parse_keyring

SENDS = ConsumerSpec(
    stream="OUTBOUND",
    durable="outbound-sends",
    filter_subjects=("cmd.outbound.send.>",),
    # Attempts are counted in the attempt record, not by redeliveries (a rate-limit pause
    # or a closed breaker redelivers without an attempt), so JetStream's cap is generous.
    max_deliver=1000,
    ack_wait_s=60.0,
    batch=64,
    max_ack_pending=20_000,
)


def _workspace(request: Request) -> str:
    auth: ApiKeyAuth = request.app.state.auth
    return auth.workspace(request)


Workspace = Annotated[str, Depends(_workspace)]


def create_app(settings: OutboundSettings) -> ServiceApp:
    """Build the outbound app; connections are made by its lifespan, never at import."""
    keys = settings.encryption_keys.get_secret_value()
    register_secret(keys)
    keyring = Keyring.from_mapping(parse_keyring(keys))
    ports: dict[str, Any] = {}
    breakers = Breakers(settings.breaker_threshold, settings.breaker_cooldown_s)

    async def start(rt: Runtime) -> None:
        cache = AccountCache(AccountStore(await rt.bus.kv("accounts"), keyring))
        rt.spawn("accounts-watch", lambda: cache.run(rt.stop))
        await asyncio.wait_for(cache.loaded.wait(), 10)
        http = httpx.AsyncClient(
            timeout=settings.call_timeout_s,
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
        )
        rt.on_close(http.aclose)
        attempts = Attempts(await rt.bus.kv("sends"))
        sender = Sender(
            bus=rt.bus,
            accounts=cache,
            attempts=attempts,
            breakers=breakers,
            limiter=SharedLimiter(
                await rt.bus.kv("ratelimit"), safety=settings.limit_safety_ms / 1000
            ),
            clients=messaging_clients(http),
            policy=SendPolicy(
                settings.max_attempts,
                settings.backoff_base_s,
                settings.backoff_max_s,
                settings.call_timeout_s,
            ),
        )
        ports.update(attempts=attempts, sender=sender, bus=rt.bus)
        worker = PullWorker(
            rt.bus, SENDS, sender.handle, stop=rt.stop, concurrency=settings.concurrency
        )
        rt.spawn("sends", worker.run)

    app = service_app(
        service="outbound",
        settings=settings,
        start=start,
        title="Switchboard outbound",
        description="Send messages through channel accounts at the providers' real limits, "
        "shared by every instance; every outcome is a delivery event.",
    )
    app.state.auth = ApiKeyAuth(settings.api_keys)

    @app.post(
        "/v1/messages",
        status_code=202,
        tags=["messages"],
        summary="Queue a message (idempotent on message_id / Idempotency-Key)",
    )
    async def send(
        ws: Workspace,
        body: Annotated[dict[str, Any], Body()],
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> Response:
        if idempotency_key:
            if body.get("message_id") not in (None, idempotency_key):
                return error(422, "conflicting_ids", "message_id and Idempotency-Key differ")
            body = {**body, "message_id": idempotency_key}
        try:
            cmd = SendMessage.model_validate(body)
        except ValueError as exc:
            return error(
                422, "invalid_message", str(exc).splitlines()[0][:300], detail=str(exc)[:2000]
            )
        existing = await ports["attempts"].get(cmd.message_id)
        if existing is not None and existing.workspace_id != ws:
            return error(409, "id_taken", "that message_id is in use")
        await ports["bus"].publish(cmd, workspace_id=ws)
        return JSONResponse(
            {"message_id": cmd.message_id, "status": existing.status if existing else "accepted"},
            202,
        )

    @app.get("/v1/messages/{message_id}", tags=["messages"], summary="Status and history")
    async def status(message_id: str, ws: Workspace) -> Response:
        record = await ports["attempts"].get(message_id)
        if record is None or record.workspace_id != ws:
            return error(404, "not_found", f"no message {message_id!r}")
        return JSONResponse(record.model_dump(mode="json"))

    @app.get(
        "/health/integrations",
        tags=["health"],
        summary="Circuit breaker state per provider and account",
    )
    async def integrations() -> Response:
        report = breakers.report()
        healthy = all(v["state"] == "closed" for v in report.values())
        return JSONResponse({"healthy": healthy, "integrations": report})

    return app
