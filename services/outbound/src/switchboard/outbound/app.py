"""The outbound service's composition root: the lanes (durable consumers), the campaign
leader, and the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Annotated, Any

from fastapi import Body, Depends, Header, Request
from starlette.responses import JSONResponse, Response

from switchboard.events.catalog.crm import ContactErased
from switchboard.events.catalog.outbound import Priority, SendBulk, SendMessage
from switchboard.outbound.attempts import Attempts, fingerprint
from switchboard.outbound.breaker import Breakers
from switchboard.outbound.campaigns.api import CampaignPorts
from switchboard.outbound.campaigns.api import router as campaign_router
from switchboard.outbound.campaigns.commands import CampaignCommands
from switchboard.outbound.campaigns.runner import CampaignSupervisor, CampaignTiming
from switchboard.outbound.campaigns.state import CampaignStore
from switchboard.outbound.campaigns.view import CampaignView
from switchboard.outbound.conversions import ConversionSender
from switchboard.outbound.dispatch import ProviderCommands
from switchboard.outbound.erasure import forget
from switchboard.outbound.http import provider_http
from switchboard.outbound.idempotency import Conflict, IdempotencyKeys, InFlight, Replay
from switchboard.outbound.lanes import Lane
from switchboard.outbound.providers import messaging_clients
from switchboard.outbound.providers.sendpulse import SendPulseClient
from switchboard.outbound.ratelimit import PauseView, SharedLimiter
from switchboard.outbound.scheduler import Horizons, Schedulers
from switchboard.outbound.sender import Phase, Sender, SendPolicy
from switchboard.outbound.settings import OutboundSettings
from switchboard.runtime import identity
from switchboard.runtime.accounts import AccountCache, AccountStore
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.auth import ApiKeyAuth
from switchboard.runtime.consumer import ConsumerSpec, PullWorker, decode_or_reject
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.http import error
from switchboard.runtime.logging import register_secret
from switchboard.runtime.ownership import NotFoundError, require
from switchboard.runtime.service import Runtime
from switchboard.runtime.settings import parse_keyring

# Attempts are counted in the attempt record, not by redeliveries (a rate-limit pause or a
# closed breaker redelivers without an attempt), so JetStream's cap is generous. Commands
# waiting for a slot are kept alive with in-progress acks, so a short ack wait only decides
# how soon a crashed instance's commands go to another one.
SENDS = ConsumerSpec(
    stream="OUTBOUND",
    durable="outbound-sends",
    filter_subjects=("cmd.outbound.send.>",),
    max_deliver=1000,
    ack_wait_s=10.0,
    max_ack_pending=20_000,
)
BULK = ConsumerSpec(
    stream="OUTBOUND",
    durable="outbound-bulk",
    filter_subjects=("cmd.outbound.bulk_send.>",),
    max_deliver=1000,
    ack_wait_s=10.0,
    max_ack_pending=20_000,
)
CAMPAIGNS = ConsumerSpec(
    stream="OUTBOUND",
    durable="outbound-campaigns",
    filter_subjects=(
        "cmd.outbound.campaign_start.>",
        "cmd.outbound.campaign_recipients.>",
        "cmd.outbound.campaign_control.>",
    ),
    max_deliver=10,
    ack_wait_s=30.0,
    max_ack_pending=1000,
)
CONVERSIONS = ConsumerSpec(
    stream="OUTBOUND",
    durable="outbound-conversions",
    filter_subjects=("cmd.outbound.conversion.>",),
    max_deliver=1000,
    ack_wait_s=30.0,
    max_ack_pending=10_000,
)
DISPATCH = ConsumerSpec(
    stream="OUTBOUND",
    durable="outbound-dispatch",
    filter_subjects=(
        "cmd.outbound.email.>",
        "cmd.outbound.sms.>",
        "cmd.outbound.address_book_sync.>",
    ),
    max_deliver=1000,
    ack_wait_s=30.0,
    max_ack_pending=5000,
)
ERASURE = ConsumerSpec(
    stream="CRM",
    durable="outbound-erasure",
    filter_subjects=("crm.contact_erased.>",),
    max_deliver=1000,
    ack_wait_s=60.0,
    batch=4,
    max_ack_pending=16,
)
DURABLES = (SENDS, BULK, CAMPAIGNS, CONVERSIONS, DISPATCH, ERASURE)


def _workspace(request: Request) -> str:
    auth: ApiKeyAuth = request.app.state.auth
    return auth.workspace(request)


Workspace = Annotated[str, Depends(_workspace)]


def create_app(settings: OutboundSettings) -> ServiceApp:
    """Build the outbound app; connections are made by its lifespan, never at import."""
    identity.configure(settings.identity_pepper.get_secret_value())
    keys = settings.encryption_keys.get_secret_value()
    register_secret(keys)
    keyring = Keyring.from_mapping(parse_keyring(keys))
    ports: dict[str, Any] = {}
    breakers = Breakers(settings.breaker_threshold, settings.breaker_cooldown_s)
    policy = SendPolicy(
        settings.max_attempts,
        settings.backoff_base_s,
        settings.backoff_max_s,
        settings.call_timeout_s,
        settings.max_lateness_ms / 1000,
        settings.idempotency_retention_s,
    )

    async def start(rt: Runtime) -> None:
        cache = AccountCache(AccountStore(await rt.bus.kv("accounts"), keyring))
        rt.spawn("accounts-watch", lambda: cache.run(rt.stop))
        await asyncio.wait_for(cache.loaded.wait(), 10)
        http = provider_http(settings.call_timeout_s)
        rt.on_close(http.aclose)
        sends_kv = await rt.bus.kv("sends")
        attempts = Attempts(sends_kv)
        ratelimit = await rt.bus.kv("ratelimit")
        pauses = PauseView(ratelimit)
        rt.spawn("pauses", lambda: pauses.run(rt.stop))
        limiter = SharedLimiter(
            ratelimit,
            safety=settings.limit_safety_ms / 1000,
            margin=settings.limit_margin,
            pauses=pauses,
        )
        schedulers = Schedulers(
            limiter,
            Horizons(
                settings.horizon_high_ms / 1000,
                settings.horizon_normal_ms / 1000,
                settings.horizon_bulk_ms / 1000,
            ),
        )
        rt.on_close(schedulers.close)
        store = CampaignStore(sends_kv)
        view = CampaignView(store)
        rt.spawn("campaign-view", lambda: view.run(rt.stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(view.ready.wait(), 10)
        sender = Sender(
            bus=rt.bus,
            accounts=cache,
            attempts=attempts,
            limiter=limiter,
            schedulers=schedulers,
            breakers=breakers,
            clients=messaging_clients(http),
            policy=policy,
            campaigns=view,
        )
        commands = CampaignCommands(rt.bus, store, view, cache)
        conversions = ConversionSender(
            rt.bus, cache, attempts, limiter, breakers, http, policy,
            linger=settings.conversion_linger_ms / 1000,
        )  # fmt: skip
        dispatch = ProviderCommands(
            rt.bus, cache, attempts, limiter, breakers, SendPulseClient(http), policy
        )
        keys = IdempotencyKeys(
            sends_kv, "messages", settings.idempotency_retention_s, settings.idempotency_lease_s
        )
        ports.update(attempts=attempts, sender=sender, bus=rt.bus, accounts=cache, keys=keys)
        app.state.campaigns = CampaignPorts(rt.bus, store, cache)
        grace = settings.shutdown_grace_s * 0.75

        def lane(spec: ConsumerSpec, handler: Any, capacity: int) -> Lane:
            return Lane(rt.bus, spec, handler, capacity, rt.stop, grace)

        async def send(msg: Any, phase: Phase) -> None:
            await sender.handle(msg, SENDS.durable, phase)

        async def bulk(msg: Any, phase: Phase) -> None:
            await sender.handle(msg, BULK.durable, phase)

        async def campaign(msg: Any, _: Phase) -> None:
            await commands.handle(msg)

        lanes = [
            lane(SENDS, send, settings.concurrency),
            lane(BULK, bulk, settings.bulk_concurrency),
            lane(CAMPAIGNS, campaign, 16),
            lane(CONVERSIONS, conversions.handle, 4000),
            lane(DISPATCH, dispatch.handle, 64),
        ]
        for item in lanes:
            rt.spawn(item.spec.durable, item.run)

        async def erased(msg: Any) -> None:
            d = decode_or_reject(msg)
            if isinstance(d.model, ContactErased):
                await forget(sends_kv, d.envelope.workspace_id, frozenset(d.model.identity_hashes))

        rt.spawn(ERASURE.durable, PullWorker(rt.bus, ERASURE, erased, stop=rt.stop).run)
        supervisor = CampaignSupervisor(
            rt.bus,
            store,
            view,
            cache,
            await rt.bus.kv("leases"),
            CampaignTiming(
                settings.campaign_tick_s,
                settings.campaign_lead_s,
                settings.campaign_progress_s,
                settings.campaign_lease_s,
            ),
            settings.instance_id,
        )
        rt.spawn("campaigns", lambda: supervisor.run(rt.stop))
        # What start-up allocated lives as long as the process: out of the collector's way,
        # a full collection no longer walks it (a 100+ ms pause there delays every send).
        gc.freeze()

    app = service_app(
        service="outbound",
        settings=settings,
        start=start,
        title="Switchboard outbound",
        description="Send messages through channel accounts at the providers' real limits, "
        "shared by every instance; campaigns; every outcome is a delivery event.",
    )
    app.state.auth = ApiKeyAuth(settings.api_keys)
    app.include_router(campaign_router)

    @app.post(
        "/v1/messages",
        status_code=202,
        tags=["messages"],
        summary="Queue a message (idempotent on message_id / Idempotency-Key); "
        "priority bulk goes through the bulk lane",
        responses={
            404: {"description": "no such account in the key's workspace"},
            409: {"description": "the first request with this id is in flight (Retry-After)"},
            422: {"description": "invalid message, or the id was used with another body"},
        },
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
            cmd: SendMessage = SendMessage.model_validate(body)
            if cmd.priority is Priority.BULK:
                cmd = SendBulk.model_validate(body)
        except ValueError as exc:
            return error(
                422, "invalid_message", str(exc).splitlines()[0][:300], detail=str(exc)[:2000]
            )
        accounts: AccountCache = ports["accounts"]
        if await accounts.lookup(cmd.channel, cmd.account, ws) is None:
            raise NotFoundError("account", f"{cmd.channel.value}/{cmd.account}")
        keys: IdempotencyKeys = ports["keys"]
        decision = await keys.begin(ws, cmd.message_id, fingerprint(cmd))
        if isinstance(decision, Conflict):
            return error(
                422,
                "idempotency_conflict",
                f"message_id {cmd.message_id!r} was used with another request body; "
                "send new content under a new message_id / Idempotency-Key",
            )
        if isinstance(decision, InFlight):
            return error(
                409,
                "request_in_flight",
                "a request with this message_id is still being handled; retry shortly",
                headers={"Retry-After": str(decision.retry_after)},
            )
        if isinstance(decision, Replay):
            return JSONResponse(decision.body, decision.status, {"Idempotent-Replayed": "true"})
        try:
            await ports["bus"].publish(cmd, workspace_id=ws)
        except BaseException:
            await keys.release(decision)
            raise
        answer = {"message_id": cmd.message_id, "status": "accepted"}
        await keys.complete(decision, 202, answer)
        return JSONResponse(answer, 202)

    @app.get("/v1/messages/{message_id}", tags=["messages"], summary="Status and history")
    async def status(message_id: str, ws: Workspace) -> Response:
        found = await ports["attempts"].get(ws, message_id)
        record = require(found, ws, "message", message_id)
        return JSONResponse(record.model_dump(mode="json", exclude={"fingerprint", "owner"}))

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
