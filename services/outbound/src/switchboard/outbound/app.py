"""The outbound service's composition root: the lanes (durable consumers), the campaign
leader, and the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

import httpx
from fastapi import Body, Depends, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.types import DecoratedCallable
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.crm import ContactErased
from switchboard.events.catalog.outbound import (
    AnswerCallback,
    ChangeScheduledSend,
    DeleteMessage,
    EditMessage,
    OutMedia,
    OutMediaGroup,
    Priority,
    SendBulk,
    SendMessage,
)
from switchboard.events.streams import OUTBOUND
from switchboard.outbound.attempts import Attempts
from switchboard.outbound.bootstrap import OutboundDeps
from switchboard.outbound.calendar.api import CalendarPorts
from switchboard.outbound.calendar.api import router as calendar_router
from switchboard.outbound.calendar.posts import Posts
from switchboard.outbound.calendar.templates import Templates
from switchboard.outbound.campaigns.api import CampaignPorts
from switchboard.outbound.campaigns.api import router as campaign_router
from switchboard.outbound.campaigns.commands import CampaignCommands
from switchboard.outbound.campaigns.pool import PoolHealth
from switchboard.outbound.campaigns.runner import CampaignSupervisor, CampaignTiming
from switchboard.outbound.campaigns.state import CampaignStore
from switchboard.outbound.campaigns.view import CampaignView
from switchboard.outbound.conversions import ConversionSender
from switchboard.outbound.dispatch import ProviderCommands
from switchboard.outbound.erasure import ErasedSends, forget
from switchboard.outbound.fits import never_leaves, unfit
from switchboard.outbound.http import provider_http
from switchboard.outbound.idempotency import IdempotencyKeys
from switchboard.outbound.interactions import Interactions, refusal
from switchboard.outbound.lanes import Lane
from switchboard.outbound.media_limits import TooLarge, largest_limit, limit_of, too_large
from switchboard.outbound.providers import TelegramClient, messaging_clients
from switchboard.outbound.providers.files import KvFileIdCache
from switchboard.outbound.providers.mtproto import GatewayClient
from switchboard.outbound.providers.sendpulse import SendPulseClient
from switchboard.outbound.ratelimit import PauseView, SharedLimiter
from switchboard.outbound.schedule import Refusal, ScheduleChanges, ScheduleDesk
from switchboard.outbound.scheduler import Horizons, Schedulers
from switchboard.outbound.sender import Phase, Sender, SendPolicy
from switchboard.outbound.settings import OutboundSettings
from switchboard.outbound.turns import Turns
from switchboard.outbound.uploads import UploadMissingError, Uploads
from switchboard.outbound.url_sizes import UrlSizes
from switchboard.outbound.workspace_accounts import require_account
from switchboard.runtime import pii, subscribers
from switchboard.runtime.accounts import AccountCache, AccountStore
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.auth import ApiKeyAuth, Workspace
from switchboard.runtime.breaker import Breakers
from switchboard.runtime.consumer import decode_or_reject
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.deps import NotStartedError, Wired
from switchboard.runtime.fingerprint import fingerprint
from switchboard.runtime.http import ProblemError, error, invalid
from switchboard.runtime.integrations import Prober, add_integrations_route
from switchboard.runtime.logging import get_logger, register_secret
from switchboard.runtime.objectstore import open_store
from switchboard.runtime.ownership import NotFoundError, require
from switchboard.runtime.periodic import every
from switchboard.runtime.provider_checks import Endpoints
from switchboard.runtime.schedules import require_schedules
from switchboard.runtime.service import Runtime
from switchboard.runtime.settings import parse_keyring
from switchboard.runtime.subscribers import Reader, Subscription, durable

log = get_logger(__name__)
# Attempts are counted in the attempt record, not by redeliveries (a rate-limit pause or a
# closed breaker redelivers without an attempt), so JetStream's cap is generous. Commands
# waiting for a slot are kept alive with in-progress acks, so a short ack wait only decides
# how soon a crashed instance's commands go to another one.
#
# Where each durable reads is the topology's (switchboard.events.topology, OUTBOUND). The
# lanes are the send path (a hot path, issue 16): each command is handed over the moment it
# arrives (delivery.pull.ContinuousPull, no batch barrier), held up to thousands at a time
# with in-progress acks while it waits for a rate-limit slot, and put back at a stop unless
# its provider call began (lanes.py). FastStream's pull subscriber costs ~3x BatchPull per
# message (bench/bench_subscribers.py); the lanes were not measured through it.
_LANE: Reader = "continuous_pull"
SENDS = Subscription(durable("outbound", "outbound-sends"), _LANE, max_failures=1000)
BULK = Subscription(durable("outbound", "outbound-bulk"), _LANE, max_failures=1000)
CAMPAIGNS = Subscription(durable("outbound", "outbound-campaigns"), _LANE, max_failures=10)
CONVERSIONS = Subscription(durable("outbound", "outbound-conversions"), _LANE, max_failures=1000)
DISPATCH = Subscription(durable("outbound", "outbound-dispatch"), _LANE, max_failures=1000)
SCHEDULE = Subscription(durable("outbound", "outbound-schedule"), _LANE, max_failures=10)
# Answers to pressed buttons are due within a second: their own consumer, never behind sends.
INTERACTIONS = Subscription(durable("outbound", "outbound-interactions"), _LANE, max_failures=10)
ERASURE = Subscription(durable("outbound", "outbound-erasure"), max_failures=1000, batch=4)
SUBSCRIPTIONS = (SENDS, BULK, CAMPAIGNS, CONVERSIONS, DISPATCH, SCHEDULE, INTERACTIONS, ERASURE)
MEDIA_KIND = "^(photo|video|audio|voice|document|animation|sticker)$"
# The providers outbound calls, as /health/integrations names them (like the breakers).
PROBED = ("telegram", "whatsapp", "viber", "sendpulse", "metacapi")
# What cancelling or rescheduling a send may answer besides 200.
_CHANGE_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such message in the key's workspace"},
    409: {
        "description": "the send is done (sent, cancelled, failed), is due within a second, "
        "or is not scheduled"
    },
}


def over_bus_limit(cmd: SendMessage, max_payload: int) -> TooLarge | None:
    """Bytes inline in a command travel in one bus message: over the bus's payload limit
    (1 MB by default) it could never be queued, whatever the provider allows."""
    if not isinstance(cmd.content, OutMedia | OutMediaGroup):
        return None
    size = len(cmd.model_dump_json(exclude_none=True))
    room = max_payload - 8 * 1024  # headers (envelope, trace) travel in the same message
    if size <= room:
        return None
    return TooLarge("content", size, room, "one queued command (the bus's max payload)")


def _store_down(exc: Exception) -> Response:
    log.warning("object store unavailable", error=str(exc))
    return error(
        503, "object_store_unavailable", "uploaded files cannot be reached right now; retry",
        headers={"Retry-After": "5"},
    )  # fmt: skip


async def _multipart(request: Request) -> None:
    """Uploads are multipart: any other body is still read (so the edge's size limit
    answers 413 as it streams in), then refused as invalid input naming the body."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        await request.body()
        reason = "an upload is a multipart/form-data body with a `file` part"
        raise RequestValidationError(
            [{"type": "multipart_required", "loc": ("body",), "msg": reason, "input": None}]
        )


def create_app(settings: OutboundSettings) -> ServiceApp:
    """Build the outbound app; connections are made by its lifespan, never at import."""
    keys = settings.encryption_keys.get_secret_value()
    register_secret(keys)
    keyring = Keyring.from_mapping(parse_keyring(keys))
    deps: Wired[OutboundDeps] = Wired("outbound")
    breakers = Breakers(settings.breaker_threshold, settings.breaker_cooldown_s)

    def last_success(key: str) -> datetime | None:
        breaker = breakers.by_key.get(key)
        return None if breaker is None else breaker.last_success_at

    policy = SendPolicy(
        settings.max_attempts,
        settings.backoff_base_s,
        settings.backoff_max_s,
        settings.call_timeout_s,
        settings.max_lateness_ms / 1000,
        settings.idempotency_retention_s,
        hold_hop=settings.hold_hop_s,
        account_hold_s=settings.account_hold_s,
        lane_places=settings.concurrency,
        unauthorized_wait=settings.unauthorized_wait_s,
    )

    async def start(rt: Runtime) -> None:
        await pii.start(rt)  # delivery events go out sealed
        await require_schedules(rt.bus, OUTBOUND.name, "outbound", "sends scheduled ahead")
        cache = AccountCache(AccountStore(await rt.bus.kv("accounts"), keyring))
        rt.spawn("accounts-watch", lambda: cache.run(rt.stop))
        async with asyncio.timeout(10):
            await cache.loaded.wait()
        http = provider_http(settings.call_timeout_s)
        rt.on_close(http.aclose)
        # Slots, pause ends and the dates of send records and idempotency keys are times
        # one instance writes and the others read: all of them on the server's clock.
        clock = rt.clock
        sends_kv = await rt.bus.kv("sends")
        attempts = Attempts(sends_kv, now=clock.utcnow)
        ratelimit = await rt.bus.kv("ratelimit")
        pauses = PauseView(ratelimit, clock=clock.now)
        rt.spawn("pauses", lambda: pauses.run(rt.stop))
        limiter = SharedLimiter(
            ratelimit,
            clock=clock.now,
            safety=settings.limit_safety_ms / 1000,
            margin=settings.limit_margin,
            pauses=pauses,
            # a call gives up after its timeout (and the second the sender adds to it),
            # having left at most max_lateness after its slot
            unresolved=settings.call_timeout_s + 1 + settings.max_lateness_ms / 1000,
        )
        rt.on_close(limiter.close)
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
            async with asyncio.timeout(10):
                await view.ready.wait()
        schedule = ScheduleChanges(sends_kv)
        desk = ScheduleDesk(rt.bus, attempts, schedule)
        objects = await open_store(settings.objects)
        rt.on_close(objects.close)
        uploads = Uploads(objects)
        probe_http = httpx.AsyncClient(timeout=settings.url_probe_timeout_s)
        rt.on_close(probe_http.aclose)
        url_sizes = UrlSizes(
            probe_http,
            probe_private=settings.url_probe_private,
            timeout=settings.url_probe_timeout_s,
        )
        # One file id cache for every instance: a file uploaded once is sent by id after.
        clients = messaging_clients(http, file_ids=KvFileIdCache(sends_kv))
        # User accounts send through the MTProto gateway, over the bus.
        gateway = GatewayClient(rt.bus, settings.call_timeout_s, clock.utcnow)
        clients["mtproto"] = gateway
        telegram = clients["telegram"]
        assert isinstance(telegram, TelegramClient)
        interactions = Interactions(
            rt.bus,
            cache,
            attempts,
            breakers,
            telegram,
            call_timeout=settings.call_timeout_s,
            gateway=gateway,
        )
        # Which accounts of a campaign's pool take its sends: one paused longer than this
        # (a long FLOOD_WAIT), revoked or restricted drops out and its sends move.
        health = PoolHealth(cache, pauses, settings.campaign_patience_s, clock=clock.now)
        erased = ErasedSends(sends_kv)
        rt.spawn("erasure-tombstones", lambda: erased.run(rt.stop))
        async with asyncio.timeout(10):
            await erased.loaded.wait()

        async def prune_tombstones() -> None:
            erased.prune((await rt.bus.js.stream_info(OUTBOUND.name)).state.first_seq)

        rt.spawn(
            "erasure-tombstones-prune",
            lambda: every(3600, rt.stop, prune_tombstones, "pruning erasure tombstones failed"),
        )
        sender = Sender(
            bus=rt.bus,
            accounts=cache,
            attempts=attempts,
            limiter=limiter,
            schedulers=schedulers,
            breakers=breakers,
            clients=clients,
            policy=policy,
            campaigns=view,
            schedule=schedule,
            uploads=uploads,
            pool=health,
            erased=erased,
            clock=clock.now,
            turns=Turns(rt.bus.js, settings.order_patience_s),
        )
        commands = CampaignCommands(rt.bus, store, view, cache, clock.utcnow)
        conversions = ConversionSender(
            rt.bus, cache, attempts, limiter, breakers, http, policy,
            linger=settings.conversion_linger_ms / 1000,
        )  # fmt: skip
        dispatch = ProviderCommands(
            rt.bus, cache, attempts, limiter, breakers, SendPulseClient(http), policy
        )

        def idempotency(scope: str) -> IdempotencyKeys:
            """One API's keys (sends, posts, campaign starts) in the sends bucket."""
            return IdempotencyKeys(sends_kv, scope, settings.idempotency_retention_s,
                                   settings.idempotency_lease_s, wall=clock.utcnow)  # fmt: skip

        keys = idempotency("messages")
        campaign_keys = idempotency("campaigns")
        app.state.campaigns = CampaignPorts(rt.bus, store, cache, campaign_keys)
        calendar_kv = await rt.bus.kv("calendar")
        post_keys = idempotency("posts")
        app.state.calendar = CalendarPorts(
            rt.bus, cache, attempts, desk, Templates(calendar_kv), Posts(calendar_kv),
            timedelta(seconds=settings.calendar_gap_s), post_keys,
        )  # fmt: skip
        grace = settings.shutdown_grace_s * 0.75

        def lane(sub: Subscription, handler: Any, cap: int, turns: Turns | None = None) -> Lane:
            return Lane(rt.bus, sub.spec, handler, cap, rt.stop, grace, turns=turns)

        async def send(msg: Any, phase: Phase) -> None:
            await sender.handle(msg, SENDS.durable.name, phase)

        async def bulk(msg: Any, phase: Phase) -> None:
            await sender.handle(msg, BULK.durable.name, phase)

        async def campaign(msg: Any, _: Phase) -> None:
            await commands.handle(msg)

        async def schedule_change(msg: Any, _: Phase) -> None:
            await desk.handle(msg)

        async def interaction(msg: Any, _: Phase) -> None:
            await interactions.handle(msg)

        lanes = [
            lane(SENDS, send, settings.concurrency, sender.turns),
            lane(BULK, bulk, settings.bulk_concurrency, sender.turns),
            lane(CAMPAIGNS, campaign, 16),
            lane(CONVERSIONS, conversions.handle, 4000),
            lane(DISPATCH, dispatch.handle, 64),
            lane(SCHEDULE, schedule_change, 16),
            lane(INTERACTIONS, interaction, 256),
        ]
        for item in lanes:
            rt.spawn(item.spec.durable, item.run)

        async def erase(msg: Any) -> None:
            d = decode_or_reject(msg)
            if isinstance(d.model, ContactErased):
                hashes = frozenset(d.model.identity_hashes)
                await forget(sends_kv, d.envelope.workspace_id, hashes, rt.bus, d.envelope)

        subscribers.spawn(rt, ERASURE.durable.name, {ERASURE: erase})
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
                settings.campaign_renew_s,
            ),
            settings.instance_id,
            health=health,
            clock=clock.now,
        )
        rt.spawn("campaigns", lambda: supervisor.run(rt.stop))
        probes = httpx.AsyncClient(timeout=settings.call_timeout_s)
        rt.on_close(probes.aclose)
        prober = Prober(
            probes, Endpoints(), cache.all, PROBED, settings.probe_interval_s, last_success
        )
        deps.set(
            OutboundDeps(
                bus=rt.bus, accounts=cache, attempts=attempts, keys=keys, desk=desk,
                uploads=uploads, url_sizes=url_sizes, prober=prober,
            )
        )  # fmt: skip
        rt.spawn("probes", lambda: prober.run(rt.stop))

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
    app.include_router(calendar_router)

    @app.post(
        "/v1/messages",
        status_code=202,
        tags=["messages"],
        summary="Queue a message (idempotent on message_id / Idempotency-Key); "
        "priority bulk goes through the bulk lane",
        responses={
            404: {"description": "no such account in the key's workspace"},
            409: {"description": "the first request with this id is in flight (Retry-After)"},
            413: {"description": "media bytes over the provider's or the bus's size limit"},
            422: {
                "description": "invalid message, a text over its provider's limit, or the id "
                "was used with another body"
            },
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
        except ValidationError as exc:
            return invalid(exc, "invalid_message", data=body)
        await require_account(deps().accounts, ws, cmd.channel, cmd.account)
        # The request as given is what its idempotency key stands for; the command may carry
        # more (a Viber file's size, asked of its URL).
        given = cmd
        if settings.url_size_check:
            cmd = await deps().url_sizes.sized(cmd)
        if (problem := unfit(cmd) or never_leaves(cmd, deps().attempts.now())) is not None:
            return problem
        try:
            sizes = await deps().uploads.sizes(ws, cmd)
        except UploadMissingError as exc:
            raise NotFoundError("upload", exc.upload_id) from None
        except Exception as exc:  # the object store is down: ours to fix, the caller retries
            return _store_down(exc)
        oversize = too_large(cmd, sizes) or over_bus_limit(cmd, deps().bus.nc.max_payload)
        if oversize is None and settings.url_size_check:
            oversize = await deps().url_sizes.too_large(cmd)
        if oversize is not None:
            return error(413, "too_large", oversize.reason, field=oversize.field)

        async def accepted() -> tuple[int, dict[str, Any]]:
            await deps().bus.publish(cmd, workspace_id=ws)
            return 202, {"message_id": cmd.message_id, "status": "accepted"}

        what = "message_id / Idempotency-Key"
        return await deps().keys.answered(ws, cmd.message_id, fingerprint(given), accepted, what)

    @app.post(
        "/v1/uploads",
        status_code=201,
        tags=["messages"],
        summary="Upload a file to send (multipart `file`); a send names the answered "
        "upload_id in content.source.upload_id. With `channel` and `kind` the provider's "
        "upload limit is checked here",
        responses={
            413: {"description": "over the provider's upload limit (or over every limit)"},
            422: {
                "description": "not multipart, no file, an empty file or more than one, an "
                "unknown channel or kind, or Viber (which takes media by URL only)"
            },
        },
    )
    async def upload(
        request: Request,
        ws: Workspace,
        _: Annotated[None, Depends(_multipart)],
        file: UploadFile,
        channel: Annotated[Channel | None, Form()] = None,
        kind: Annotated[str | None, Form(pattern=MEDIA_KIND)] = None,
    ) -> Response:
        if len((await request.form()).getlist("file")) > 1:  # the last one was kept, silently
            return error(422, "invalid_request", "file: one file per upload", field="file")
        if channel is Channel.VIBER:  # stored, it could only be refused at every send
            return error(422, "unsupported_content", "Viber takes no uploaded files: it "
                         "fetches media from a public URL (content.source.url)",
                         field="channel")  # fmt: skip
        size = file.size if file.size is not None else 0
        limit = limit_of(channel, kind) if channel and kind else None
        cap, what = limit or (largest_limit(), "any provider's uploads")
        if size > cap:
            return error(
                413,
                "too_large",
                f"file: {size} bytes is over the {cap}-byte limit of {what}",
                field="file",
            )
        data = await file.read()
        if not data:
            return error(422, "invalid_request", "file: is empty; no provider sends an empty "
                         "file", field="file")  # fmt: skip
        mime = file.content_type or "application/octet-stream"
        try:
            saved = await deps().uploads.save(ws, data, mime, file.filename)
        except Exception as exc:
            return _store_down(exc)
        return JSONResponse(
            {
                "upload_id": saved.upload_id,
                "size": saved.size,
                "sha256": saved.sha256,
                "mime_type": saved.mime_type,
                "file_name": saved.file_name,
            },
            201,
        )

    @app.get("/v1/messages/{message_id}", tags=["messages"], summary="Status and history")
    async def status(message_id: str, ws: Workspace) -> Response:
        found = await deps().attempts.get(ws, message_id)
        record = require(found, ws, "message", message_id)
        return JSONResponse(
            record.model_dump(mode="json", exclude={"fingerprint", "owner", "announced"})
        )

    async def change(ws: str, message_id: str, new_time: datetime | None) -> Response:
        answer = await deps().desk.change(ws, message_id, new_time, None)
        if isinstance(answer, Refusal):
            if answer.status == 404:
                raise NotFoundError("message", message_id)
            return error(answer.status, answer.code, answer.reason)
        return JSONResponse(answer.model_dump(mode="json"), 200)

    @app.post(
        "/v1/messages/{message_id}/cancel",
        tags=["messages"],
        summary="Cancel a scheduled send until it leaves (delivery.failed, code cancelled)",
        responses=_CHANGE_ANSWERS,
    )
    async def cancel(message_id: str, ws: Workspace) -> Response:
        return await change(ws, message_id, None)

    @app.post(
        "/v1/messages/{message_id}/reschedule",
        tags=["messages"],
        summary="Move a scheduled send earlier or later until it leaves (delivery.rescheduled)",
        responses={
            **_CHANGE_ANSWERS,
            422: {"description": "not_before missing, naive, in the past, or past expires_at"},
        },
    )
    async def reschedule(
        message_id: str, ws: Workspace, body: Annotated[dict[str, Any], Body()]
    ) -> Response:
        data = {**body, "message_id": message_id, "action": "reschedule"}
        try:
            cmd = ChangeScheduledSend.model_validate(data)
        except ValidationError as exc:
            return invalid(exc, "invalid_message", data=data)
        return await change(ws, message_id, cmd.not_before)

    async def interact(
        ws: str, model: type[AnswerCallback | EditMessage | DeleteMessage], body: dict[str, Any]
    ) -> Response:
        """Validate, check the account is the workspace's, publish; 202 with the request id
        (the outcome is ``delivery.interaction_applied`` / ``_failed``)."""
        try:
            cmd = model.model_validate(body)
        except ValidationError as exc:
            return invalid(exc, "invalid_message", data=body)
        await require_account(deps().accounts, ws, cmd.channel, cmd.account)
        if cmd.channel not in (Channel.TELEGRAM, Channel.MTPROTO):  # the lane would fail it
            return error(422, "unsupported", f"{cmd.channel.value} has no {cmd.name} for "
                         "business messages: Telegram only", field="channel")  # fmt: skip
        if (refused := refusal(cmd)) is not None:
            field, reason, code = refused
            code = "too_long" if code == "too_long" else "unsupported_content"
            return error(422, code, reason, field=field)
        await deps().bus.publish(cmd, workspace_id=ws)
        return JSONResponse({"request_id": cmd.request_id, "status": "accepted"}, 202)

    async def of_message(ws: str, message_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """An edit or deletion of our send ``message_id``: its channel and account come from
        its record (another workspace's message does not exist: 404); without a
        ``request_id`` each request is a new one."""
        record = require(await deps().attempts.get(ws, message_id), ws, "message", message_id)
        if record.provider_message_id is None:
            # Queued, sending or failed: the lane can only fail it, later (unknown_message).
            raise ProblemError(
                error(409, "not_sent", f"message {message_id!r} is {record.status}, not sent: "
                      "only a sent message is edited or deleted")
            )  # fmt: skip
        return {
            "request_id": f"{message_id}:{uuid.uuid4().hex}",
            **body,
            "message_id": message_id,
            "channel": record.channel,
            "account": record.account,
        }

    def interaction_route(
        path: str, summary: str, *, of_a_send: bool = True
    ) -> Callable[[DecoratedCallable], DecoratedCallable]:
        """A POST route of an interaction: accepted (202) for the interactions lane."""
        responses: dict[int | str, dict[str, Any]] = {
            404: {"description": "no such account (or message) in the key's workspace"},
            422: {
                "description": "invalid, or `unsupported`: a channel other than Telegram "
                "(a user account edits and deletes; buttons and callbacks are a bot's)"
            },
        }
        if of_a_send:
            responses[409] = {"description": "`not_sent`: the message is queued or failed"}
        return app.post(
            path, status_code=202, tags=["interactions"], summary=summary, responses=responses
        )

    @interaction_route(
        "/v1/callbacks/answer",
        "Answer a pressed inline button (text, or an alert); idempotent on request_id",
        of_a_send=False,
    )
    async def answer_callback(ws: Workspace, body: Annotated[dict[str, Any], Body()]) -> Response:
        return await interact(ws, AnswerCallback, body)

    @interaction_route(
        "/v1/messages/{message_id}/edit", "Edit a sent message's text, caption or inline keyboard"
    )
    async def edit(
        message_id: str, ws: Workspace, body: Annotated[dict[str, Any], Body()]
    ) -> Response:
        return await interact(ws, EditMessage, await of_message(ws, message_id, body))

    @interaction_route("/v1/messages/{message_id}/delete", "Delete a sent message at the provider")
    async def delete(
        message_id: str, ws: Workspace, body: Annotated[dict[str, Any] | None, Body()] = None
    ) -> Response:
        return await interact(ws, DeleteMessage, await of_message(ws, message_id, body or {}))

    def integrations() -> dict[str, dict[str, Any]]:
        """Per provider account: its breaker and recent calls, and its last probe."""
        calls = breakers.report()
        try:
            probes = deps().prober.report()
        except NotStartedError:  # nothing probed yet
            probes = {}
        return {
            key: {**calls.get(key, {"state": "closed"}), "probe": probes.get(key)}
            for key in sorted(calls.keys() | probes.keys())
        }

    add_integrations_route(
        app,
        integrations,
        "Per provider account: breaker state, last success and failure (with the "
        "reason), p95 latency of recent calls, and the periodic probe's result",
    )

    return app
