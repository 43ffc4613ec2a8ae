"""The ingest service's composition root: webhook routes, the admin API, the normalizer."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from functools import lru_cache, wraps
from typing import Annotated, Any, ParamSpec

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Body as JsonBody
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from nats.aio.msg import Msg

from switchboard.events.catalog.common import Channel
from switchboard.ingest import admin, normalizer
from switchboard.ingest.bootstrap import IngestDeps, bootstrap
from switchboard.ingest.fastpath import (
    ReadBody,
    WebhookResult,
    webhook_fast_path,
    webhook_operations,
)
from switchboard.ingest.limits import TokenBuckets
from switchboard.ingest.settings import IngestSettings
from switchboard.ingest.webhooks import (
    VERIFIERS,
    BusUnavailableError,
    RejectedError,
    body_limit,
    store_raw,
    whatsapp_handshake,
    whatsapp_targets,
)
from switchboard.runtime import pii, subscribers, viber_welcome
from switchboard.runtime.accounts import Account
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.auth import check_admin
from switchboard.runtime.crypto import DecryptError, Keyring
from switchboard.runtime.deps import NotStartedError, Wired
from switchboard.runtime.http import error, problem_body
from switchboard.runtime.integrations import add_integrations_route
from switchboard.runtime.logging import get_logger, register_secret
from switchboard.runtime.metrics import HTTP_REQUESTS
from switchboard.runtime.service import Runtime
from switchboard.runtime.settings import parse_keyring
from switchboard.runtime.tracing import server_span

log = get_logger(__name__)
P = ParamSpec("P")

WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "verified and stored durably in RAW"},
    400: {"description": "malformed body (the error names the problem)"},
    401: {"description": "missing or wrong secret / signature"},
    404: {"description": "unknown account"},
    413: {"description": "body over the size limit"},
    415: {"description": "not application/json"},
    429: {"description": "per-account inbound limit exceeded (Retry-After)"},
    503: {"description": "bus unavailable: the provider should retry"},
}


@lru_cache(maxsize=256)
def _requests_counter(channel: str, status: int) -> Any:
    """The labelled counter child (cached: label lookup takes a lock on every webhook)."""
    return HTTP_REQUESTS.labels(f"webhook_{channel}", "POST", str(status))


def create_app(settings: IngestSettings) -> ServiceApp:
    """Build the ingest app; connections are made by its lifespan, never at import."""
    keys = settings.encryption_keys.get_secret_value()
    register_secret(keys)
    if settings.admin_token:
        register_secret(settings.admin_token.get_secret_value())
    keyring = Keyring.from_mapping(parse_keyring(keys))
    deps: Wired[IngestDeps] = Wired("ingest")
    limiter = TokenBuckets(
        rate=settings.inbound_rate_per_account, burst=settings.inbound_burst_per_account
    )
    providers = admin.Providers(
        telegram=settings.telegram_api_url,
        viber=settings.viber_api_url,
        public_url=settings.public_url or "",
    )

    async def start(rt: Runtime) -> None:
        built = await bootstrap(rt, keyring, providers, settings)
        rt.spawn("accounts-watch", lambda: built.cache.run(rt.stop))
        async with asyncio.timeout(10):
            await built.cache.loaded.wait()
        deps.set(built)
        prober = built.prober
        rt.spawn("probes", lambda: prober.run(rt.stop))
        if settings.normalizer:
            dedup = await rt.bus.kv("dedup")
            keys = await pii.start(rt)
            sub = replace(normalizer.SUBSCRIPTION, concurrency=settings.normalizer_concurrency)

            async def normalize(msg: Msg) -> None:
                await normalizer.handle_raw(rt.bus, dedup, msg, keys)

            subscribers.spawn(rt, "normalizer", {sub: normalize})

    app = service_app(
        service="ingest",
        settings=settings,
        start=start,
        title="Switchboard ingest",
        description="Verified provider webhooks, stored durably in RAW before they are answered. "
        "Every rejection is a 4xx with a JSON body naming the problem, and publishes nothing.",
    )

    def whatsapp_number(number: str) -> Account | None:
        """The WhatsApp account of ``number``: a scan, asked only for a body that holds
        changes of a number other than its account's own."""
        return next(
            (
                a
                for a in deps().cache.all()
                if a.channel is Channel.WHATSAPP
                and str(a.settings.get("phone_number_id")) == number
            ),
            None,
        )

    def account_of(channel: Channel, account_id: str) -> Account:
        found = deps().cache.get(channel, account_id)
        if found is None:
            raise RejectedError(
                404, "unknown_account", f"no {channel.value} account {account_id!r}"
            )
        return found

    async def publish(subject: str, body: bytes, headers: dict[str, str]) -> None:
        await app.runtime.bus.publish_raw(
            subject, body, headers, timeout=settings.publish_timeout_s
        )

    def webhook_limit() -> int:
        """The body limit; before the service has started (no bus yet: the app is called
        without its lifespan, as the route walks do) the setting alone, so an oversized
        body is still a 413 rather than a 500."""
        try:
            max_payload = app.runtime.bus.max_payload
        except RuntimeError:
            return settings.max_body_bytes
        return body_limit(settings.max_body_bytes, max_payload)

    async def handle(
        channel: Channel, account_id: str, headers: Mapping[str, str], read: ReadBody
    ) -> WebhookResult:
        """Verify, limit, store durably; every outcome is a status with a JSON body (a
        problem document for a rejection)."""
        path = f"/webhooks/{channel.value}/{account_id}"
        with server_span(
            f"webhook {channel.value}", headers, **{"switchboard.account": account_id}
        ) as trace_headers:
            try:
                body = await read(webhook_limit())
                account = account_of(channel, account_id)
                now = app.runtime.clock.utcnow()
                raw_id = VERIFIERS[channel](account, headers, body, now)
                wait = limiter.take(f"{channel.value}/{account_id}")
                if wait > 0:
                    seconds = math.ceil(wait)
                    raise RejectedError(
                        429,
                        "rate_limited",
                        "inbound limit for this account exceeded",
                        headers={"Retry-After": str(seconds)},
                    )
                targets = [(account, raw_id, body)]
                if channel is Channel.WHATSAPP:  # one app's callback gets all its numbers
                    targets = whatsapp_targets(account, body, raw_id, whatsapp_number)
                for target, target_id, part in targets:
                    result = await store_raw(
                        channel=channel,
                        account=target,
                        raw_id=target_id,
                        body=part,
                        publish=publish,
                        source=app.runtime.bus.source,
                        received_at=now,
                        trace_headers=trace_headers,
                    )
                if len(targets) != 1:
                    result = {"ok": True, "ids": [target_id for _, target_id, _ in targets]}
                if channel is Channel.VIBER and (
                    welcome := viber_welcome.welcome_message(account, body)
                ):
                    result = welcome  # stored first: Viber shows this answer to the user
                outcome = WebhookResult(200, result)
            except RejectedError as rej:
                problem = problem_body(rej.status, rej.code, rej.message, instance=path)
                outcome = WebhookResult(rej.status, problem, rej.headers or {})
            except NotStartedError as exc:  # before the lifespan ran: no accounts to check
                problem = problem_body(503, "unavailable", str(exc), instance=path)
                outcome = WebhookResult(503, problem, {"Retry-After": "1"})
            except BusUnavailableError as exc:
                log.warning("RAW publish failed", account=account_id, error=str(exc))
                problem = problem_body(
                    503,
                    "bus_unavailable",
                    "could not store the payload; retry later",
                    instance=path,
                )
                outcome = WebhookResult(503, problem)
        _requests_counter(channel.value, outcome.status).inc()
        return outcome

    app.fast_path = webhook_fast_path(handle)
    app.fast_path_routes = webhook_operations(WEBHOOK_RESPONSES)

    @app.get(
        "/webhooks/whatsapp/{account}",
        summary="WhatsApp verification handshake",
        responses={
            200: {"description": "the challenge, as text"},
            403: {"description": "wrong mode or verify token"},
            404: {"description": "unknown account"},
        },
        tags=["webhooks"],
    )
    async def whatsapp_verify(
        account: str,
        mode: Annotated[str, Query(alias="hub.mode")] = "",
        token: Annotated[str, Query(alias="hub.verify_token")] = "",
        challenge: Annotated[str, Query(alias="hub.challenge", max_length=256)] = "",
    ) -> Response:
        try:
            found = account_of(Channel.WHATSAPP, account)
            now = app.runtime.clock.utcnow()
            return PlainTextResponse(whatsapp_handshake(found, mode, token, challenge, now))
        except RejectedError as rej:
            return error(rej.status, rej.code, rej.message)

    def integrations() -> dict[str, dict[str, Any]]:
        try:
            report = deps().prober.report()
        except NotStartedError:  # nothing probed yet
            report = {}
        return {k: {"probe": v} for k, v in report.items()}

    add_integrations_route(
        app,
        integrations,
        "Per account whose webhook ingest registers: the periodic probe's result "
        "(last success, last failure with the reason, p95 latency)",
    )
    _admin_routes(app, settings, deps, providers)
    return app


def _admin_routes(
    app: ServiceApp, settings: IngestSettings, deps: Wired[IngestDeps], providers: admin.Providers
) -> None:
    token = settings.admin_token.get_secret_value() if settings.admin_token else None

    def require_admin(request: Request) -> None:
        check_admin(request, token)

    # A route dependency runs before FastAPI validates path and body, so an unauthenticated
    # caller gets 401 and learns nothing about the request shapes.
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

    def problems(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
        """An admin handler whose refusals (and unreadable accounts) answer as problems."""

        @wraps(handler)
        async def answer(*args: P.args, **kwargs: P.kwargs) -> Response:
            try:
                return await handler(*args, **kwargs)
            except admin.AdminError as exc:
                extra: dict[str, Any] = {} if exc.field is None else {"field": exc.field}
                return error(exc.status, exc.code, exc.message, errors=exc.errors, **extra)
            except DecryptError as exc:
                return error(409, "unreadable_account", f"the account exists but {exc}")

        return answer

    @router.get("/accounts", summary="List accounts (no secret values)")
    @problems
    async def list_accounts() -> Response:
        accounts, unreadable = await deps().store.scan()
        return JSONResponse(
            {
                "items": [a.public() for a in accounts],
                "unreadable": [{"key": k, "error": why} for k, why in unreadable],
            }
        )

    @router.post(
        "/accounts",
        status_code=201,
        summary="Add an account and register its webhook with the provider",
        description="Checks the credentials with the provider first (as "
        "`/admin/accounts/check`): a wrong one is a 422 naming the field, and nothing is saved.",
    )
    @problems
    async def add_account(body: Annotated[Account, JsonBody()]) -> Response:
        account, generated = await admin.add_account(deps().store, deps().http, providers, body)
        return JSONResponse({**account.public(), "generated_secrets": generated}, 201)

    @router.post(
        "/accounts/check",
        summary="Check an account's credentials with its provider without saving anything",
        description="The same body as adding an account. 200 with `ok`, the facts the "
        "provider told (a bot's username, a number's name) and notes on what could not be "
        "checked; 422 naming every wrong field (`errors`); 502 if the provider did not answer.",
    )
    @problems
    async def check_account(body: Annotated[Account, JsonBody()]) -> Response:
        report = await admin.check(deps().http, providers, body)
        if not report.ok:
            raise admin.refused(report)
        return JSONResponse(report.body())

    @router.post(
        "/accounts/{channel}/{account_id}/rotate",
        summary="Rotate the webhook secret (the old one works for a grace period)",
    )
    @problems
    async def rotate(channel: Channel, account_id: str) -> Response:
        account = await admin.rotate_webhook_secret(
            deps().store, deps().http, providers, channel, account_id, app.runtime.clock.utcnow()
        )
        return JSONResponse(account.public())

    @router.patch(
        "/accounts/{channel}/{account_id}",
        summary="Change an account's settings or secrets in place",
        description="`settings` to set (`null` removes one) and `secrets` to replace, e.g. a "
        "token renewed after it expired: checked with the provider first (a wrong value is a "
        "422 naming it and nothing changes); another bot or number is a 409. Sends waiting on "
        "refused credentials leave once the new secret is stored.",
    )
    @problems
    async def update(
        channel: Channel, account_id: str, body: Annotated[admin.AccountChange, JsonBody()]
    ) -> Response:
        account = await admin.update_account(
            deps().store, deps().http, providers, channel, account_id, body,
            app.runtime.clock.utcnow(),
        )  # fmt: skip
        return JSONResponse(account.public())

    @router.delete(
        "/accounts/{channel}/{account_id}",
        status_code=204,
        summary="Remove an account and its webhook at the provider",
    )
    @problems
    async def remove(channel: Channel, account_id: str) -> Response:
        await admin.remove_account(deps().store, deps().http, providers, channel, account_id)
        return Response(status_code=204)

    @router.post(
        "/keys/reencrypt",
        summary="Re-encrypt every account with the active key (end of a key rotation)",
    )
    @problems
    async def reencrypt() -> Response:
        count = await deps().store.reencrypt_all()
        _, unreadable = await deps().store.scan()
        return JSONResponse(
            {
                "reencrypted": count,
                "unreadable": [{"key": k, "error": why} for k, why in unreadable],
            }
        )

    app.include_router(router)
