"""The CRM service's composition root: projections, the contact resolver, the command
consumer, and the read and command API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from decimal import Decimal
from typing import Annotated, Any, Unpack

import asyncpg
from fastapi import Body, Query
from fastapi.types import DecoratedCallable
from nats.aio.msg import Msg
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from switchboard.crm import (
    account_status_projector,
    campaigns,
    commands,
    crm_projector,
    delivery_projector,
    erased_files,
    projector,
    queries,
)
from switchboard.crm.bootstrap import CrmDeps, bootstrap
from switchboard.crm.campaigns import CampaignRequest
from switchboard.crm.commands import Applied, Context, RejectedError
from switchboard.crm.limits import ContactRequest
from switchboard.crm.media_api import media_routes
from switchboard.crm.resolver import Resolver
from switchboard.crm.settings import CrmSettings
from switchboard.crm.store import EventStore
from switchboard.events import decode_message
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.conv import (
    ContactNumberChanged,
    ContactStatusChanged,
    MessageReceived,
)
from switchboard.events.catalog.crm import (
    AssignLead,
    ChangeLeadStage,
    CommandRejected,
    EraseContact,
    Identity,
    MergeContacts,
    SplitContact,
    StartSegmentCampaign,
    StartSegmentFlow,
    UpdateContact,
)
from switchboard.events.catalog.mtproto import AccountStatus
from switchboard.runtime import pii, subscribers
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.auth import ApiKeyAuth, Workspace
from switchboard.runtime.consumer import decode_or_reject
from switchboard.runtime.db import Conn, load_migrations
from switchboard.runtime.deps import Wired
from switchboard.runtime.http import error
from switchboard.runtime.periodic import every
from switchboard.runtime.projection import Projection, Site
from switchboard.runtime.service import Runtime
from switchboard.runtime.subscribers import Subscription, durable

SCHEMA = "crm"
PROJECTIONS = (projector, crm_projector, delivery_projector, account_status_projector)
# Its durables, where they read as switchboard.events.topology (CRM) declares them.
# The resolver takes every inbound message: on the runtime's batch reader
# (consumer.PullWorker), as the ingest normalizer does. bench_subscribers: FastStream's pull
# subscriber at 0.29 of its rate; bench_crm's e2e run at 500 msg/s: the CRM process's CPU
# 61 -> 58 % and 63 -> 57 % of a core (docs/benchmark-notes.md).
RESOLVER = Subscription(durable("crm", "crm-resolver"), reader="batch_pull", batch=128)
# A lead's creation and its moves, published together, apply in their order (``ordered``).
COMMANDS = Subscription(durable("crm", "crm-commands"), batch=32, ordered=True)
SUBSCRIPTIONS = (RESOLVER, COMMANDS)


def build_projection(module: Any, **site: Unpack[Site]) -> Projection:
    """A projection of one projector module; a module with a ``prepare`` step gets its
    decoding overlapped with Postgres (live service, rebuild and benchmark alike)."""
    prepare = getattr(module, "prepare", None)
    apply = module.apply_prepared if prepare else module.apply_batch
    return Projection.of_projector(module, apply, prepare, **site)


Limit = Annotated[int, Query(ge=1, le=500)]
# How a command route reads the aggregate it changed: (conn, workspace, id) -> its view.
Read = Callable[[Conn, str, str], Awaitable[dict[str, Any] | None]]


class StageChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_stage: str = Field(min_length=1)
    expected_version: int | None = Field(None, ge=0)
    reason: str | None = None
    value: Decimal | None = None
    by: str | None = None


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str | None
    expected_version: int | None = Field(None, ge=0)


class ContactChange(ContactRequest):
    model_config = ConfigDict(extra="forbid")
    expected_version: int | None = Field(None, ge=0)


class Merge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    merged_contact_id: str = Field(min_length=1)
    expected_version: int | None = Field(None, ge=0)


class Split(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Channel
    external_id: str = Field(min_length=1)
    expected_version: int | None = Field(None, ge=0)


def create_app(settings: CrmSettings) -> ServiceApp:
    """Build the CRM app; connections are made by its lifespan, never at import."""
    deps: Wired[CrmDeps] = Wired("crm")
    # The media routes (media_api.py) still look what they use up by name: filled from the
    # typed dependencies, in the same place.
    media_ports: dict[str, Any] = {}

    async def start(rt: Runtime) -> None:
        assert rt.pool is not None
        await pii.start(rt)  # the projections and the resolver open sealed personal data
        built = await bootstrap(rt, settings)
        store = built.store
        site = rt.site(SCHEMA, settings.projection_batch)
        rt.run_projections(build_projection(m, **site) for m in PROJECTIONS)
        resolver = Resolver(store, settings)

        async def resolve(msg: Msg) -> None:
            await pii.open_messages([msg])
            decoded = decode_message(msg.subject, dict(msg.headers or {}), msg.data)
            if pii.is_erased(getattr(getattr(decoded.model, "sender", None), "id", None)):
                return  # an old message of a person erased since: no one to resolve
            if isinstance(decoded.model, MessageReceived):
                await resolver.resolve(decoded.model, decoded.envelope)
            elif isinstance(decoded.model, ContactNumberChanged):
                await resolver.number_changed(decoded.model, decoded.envelope)
            elif isinstance(decoded.model, ContactStatusChanged):
                await resolver.opened(decoded.model, decoded.envelope)

        async def command(msg: Msg) -> None:
            await handle_command(store, settings, msg, rt.pool)

        consumers = {
            replace(RESOLVER, concurrency=settings.resolver_concurrency): resolve,
            COMMANDS: command,
        }
        subscribers.spawn(rt, "consumers", consumers)
        cache = built.accounts
        if cache is not None:
            # Not awaited: the CRM's projections never wait on the accounts; the media
            # route waits (briefly) for the first load instead.
            rt.spawn("accounts-watch", lambda: cache.run(rt.stop))
        media_ports.update(built.media_ports())
        deps.set(built)
        objects = built.objects

        async def sweep_erased_files() -> None:
            while await erased_files.sweep(rt.pool, objects) == erased_files.BATCH:
                pass  # a backlog goes in one round

        rt.spawn(
            "erased-files",
            lambda: every(5, rt.stop, sweep_erased_files, "deleting erased files failed"),
        )

    app = service_app(
        service="crm",
        settings=settings,
        start=start,
        title="Switchboard CRM",
        description="Contacts, conversations and leads projected from the event streams. "
        "Commands append to event-sourced aggregates with optimistic concurrency: a stale "
        "expected_version answers 409.",
        migrations=load_migrations("switchboard.crm"),
        schema=SCHEMA,
    )
    app.state.auth = ApiKeyAuth(settings.api_keys)
    _read_routes(app, deps)
    _command_routes(app, deps, settings)
    _campaign_routes(app, deps, settings)
    media_routes(app, media_ports, settings)
    return app


async def handle_command(
    store: EventStore, settings: CrmSettings, msg: Msg, pool: Any = None
) -> None:
    """A command from the bus: apply it, or record why it was rejected."""
    decoded = decode_or_reject(msg)
    cmd, env = decoded.model, decoded.envelope
    try:
        if isinstance(cmd, StartSegmentCampaign):
            await segment_campaign(pool, store.bus, settings, cmd, env.workspace_id)
            return
        if isinstance(cmd, StartSegmentFlow):
            await segment_flow(pool, store.bus, settings, cmd, env.workspace_id)
            return
        await execute(store, settings, cmd, env.workspace_id, env, pool)
    except RejectedError as exc:
        await store.bus.publish(
            CommandRejected(
                command_id=env.id, command=cmd.name, status=exc.status, reason=exc.message
            ),
            cause=env,
        )


def _check_stage(settings: CrmSettings, stage: str | None) -> None:
    """A segment's stage must be one of the workspace's lead stages."""
    if stage is not None and stage not in settings.stages:
        raise RejectedError(
            422, "unknown_stage", f"{stage!r} is not one of {', '.join(settings.stages)}"
        )


async def segment_flow(
    pool: Any, bus: Any, settings: CrmSettings, cmd: StartSegmentFlow, workspace: str
) -> int:
    """``crm.start_flow`` from the bus: the segment's conversations handed to flows."""
    _check_stage(settings, cmd.segment.stage)
    async with pool.acquire() as conn:
        return await campaigns.start_flow(conn, bus, workspace, cmd)


async def segment_campaign(
    pool: Any, bus: Any, settings: CrmSettings, cmd: StartSegmentCampaign, workspace: str
) -> campaigns.Started:
    """``crm.start_campaign`` from the bus: what ``POST /v1/campaigns`` does."""
    request = CampaignRequest(
        campaign_id=cmd.campaign_id,
        title=cmd.title,
        segment=campaigns.Segment.model_validate(cmd.segment.model_dump()),
        content=cmd.content,
        keyboard=cmd.keyboard,
        priority=cmd.priority,
    )
    return await start_campaign(pool, bus, settings, request, workspace)


async def start_campaign(
    pool: Any, bus: Any, settings: CrmSettings, request: CampaignRequest, workspace: str
) -> campaigns.Started:
    """Start a campaign to a segment, or refuse it (RejectedError: an unknown stage, a
    segment that cannot make a campaign); the HTTP route and the bus command both."""
    _check_stage(settings, request.segment.stage)
    async with pool.acquire() as conn:
        try:
            return await campaigns.start_campaign(conn, bus, workspace, request)
        except campaigns.SegmentError as exc:
            raise RejectedError(422, exc.code, exc.message) from None


async def execute(
    store: EventStore,
    settings: CrmSettings,
    cmd: Any,
    workspace: str,
    cause: Any = None,
    pool: Any = None,
) -> Applied:
    merged_into: dict[str, str] = {}
    if isinstance(cmd, MergeContacts) and pool is not None:
        async with pool.acquire() as conn:
            merged_into = await queries.merged_into(
                conn, workspace, (cmd.contact_id, cmd.merged_contact_id)
            )
    ctx = Context(workspace, settings.stages, merged_into)
    return await commands.execute(store, cmd, ctx, cause)


async def wait_projected(pool: Any, seq: int, timeout: float = 5.0) -> None:
    """Read-your-writes: return once the CRM projection has applied ``seq``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with pool.acquire() as conn:
            if await queries.projected_to(conn, crm_projector.PROJECTION) >= seq:
                return
        await asyncio.sleep(0.02)


def _read_routes(app: ServiceApp, deps: Wired[CrmDeps]) -> None:
    def pool() -> asyncpg.Pool:
        return deps().pool

    async def page(fetch: Any) -> Response:
        async with pool().acquire() as conn:
            try:
                return JSONResponse(await fetch(conn))
            except queries.BadCursorError as exc:
                return error(400, "bad_cursor", str(exc))

    @app.get(
        "/v1/conversations",
        tags=["conversations"],
        summary="The inbox across all accounts, most recent first",
    )
    async def conversations(ws: Workspace, q: Annotated[queries.InboxQuery, Query()]) -> Response:
        return await page(lambda c: queries.inbox(c, ws, q))

    @app.get(
        "/v1/conversations/{conversation_id}/messages",
        tags=["conversations"],
        summary="A conversation's messages, oldest first, with delivery status",
    )
    async def messages(
        conversation_id: str,
        ws: Workspace,
        limit: Limit = 100,
        cursor: str | None = None,
        text: str | None = None,
    ) -> Response:
        async with pool().acquire() as conn:
            if not await queries.conversation_exists(conn, ws, conversation_id):
                return error(404, "not_found", f"no conversation {conversation_id!r}")
        return await page(
            lambda c: queries.conversation_messages(
                c, ws, conversation_id, limit=limit, cursor=cursor, text=text
            )
        )

    @app.get("/v1/messages/search", tags=["conversations"], summary="Full-text search")
    async def search(
        ws: Workspace,
        text: Annotated[str, Query(min_length=1)],
        limit: Limit = 50,
        cursor: str | None = None,
    ) -> Response:
        return await page(
            lambda c: queries.search_messages(c, ws, text, limit=limit, cursor=cursor)
        )

    @app.get("/v1/contacts", tags=["contacts"], summary="Contacts, recently updated first")
    async def contacts(ws: Workspace, q: Annotated[queries.ContactsQuery, Query()]) -> Response:
        return await page(lambda c: queries.contacts(c, ws, q))

    @app.get(
        "/v1/contacts/{contact_id}",
        tags=["contacts"],
        summary="A contact with identities, notes, leads and version",
    )
    async def contact(contact_id: str, ws: Workspace) -> Response:
        async with pool().acquire() as conn:
            found = await queries.contact(conn, ws, contact_id)
        if found is None:
            return error(404, "not_found", f"no contact {contact_id!r}")
        return JSONResponse(found)

    @app.get(
        "/v1/user-accounts",
        tags=["user accounts"],
        summary="The workspace's Telegram user accounts (MTProto sessions) and their status",
    )
    async def user_accounts(ws: Workspace, status: AccountStatus | None = None) -> Response:
        async with pool().acquire() as conn:
            items = await queries.user_accounts(conn, ws, status=status)
        return JSONResponse({"items": items})

    @app.get("/v1/leads", tags=["leads"], summary="Leads, recently updated first")
    async def leads(ws: Workspace, q: Annotated[queries.LeadsQuery, Query()]) -> Response:
        return await page(lambda c: queries.leads(c, ws, q))

    @app.get("/v1/leads/{lead_id}", tags=["leads"], summary="A lead with its stage history")
    async def lead(lead_id: str, ws: Workspace) -> Response:
        async with pool().acquire() as conn:
            found = await queries.lead(conn, ws, lead_id)
        if found is None:
            return error(404, "not_found", f"no lead {lead_id!r}")
        return JSONResponse(found)


def _command_routes(app: ServiceApp, deps: Wired[CrmDeps], settings: CrmSettings) -> None:
    async def run(ws: str, cmd: Any, read: Read) -> Response:
        try:
            applied = await execute(deps().store, settings, cmd, ws, pool=deps().pool)
        except RejectedError as exc:
            return error(exc.status, exc.code, exc.message)
        await wait_projected(deps().pool, applied.version)
        async with deps().pool.acquire() as conn:
            body = await read(conn, ws, applied.aggregate_id)
        return JSONResponse(body or {"id": applied.aggregate_id, "version": applied.version})

    conflict: dict[int | str, dict[str, Any]] = {
        404: {"description": "unknown id"},
        409: {"description": "stale version, or (a merge) a contact merged away already"},
        422: {"description": "invalid request"},
    }

    def command(
        path: str, tag: str, summary: str
    ) -> Callable[[DecoratedCallable], DecoratedCallable]:
        """A command route: it answers the aggregate as read after the change, or the
        command's refusal (unknown id, stale version, invalid request)."""
        return app.post(path, tags=[tag], responses=conflict, summary=summary)

    @command("/v1/leads/{lead_id}/stage", "leads", "Move a lead to another stage")
    async def stage(lead_id: str, ws: Workspace, body: Annotated[StageChange, Body()]) -> Response:
        cmd = ChangeLeadStage(lead_id=lead_id, **body.model_dump())
        return await run(ws, cmd, queries.lead)

    @command("/v1/leads/{lead_id}/assign", "leads", "Assign a lead")
    async def assign(lead_id: str, ws: Workspace, body: Annotated[Assignment, Body()]) -> Response:
        cmd = AssignLead(lead_id=lead_id, **body.model_dump())
        return await run(ws, cmd, queries.lead)

    @command(
        "/v1/contacts/{contact_id}",
        "contacts",
        "Update a contact's fields, attributes, tags or add a note",
    )
    async def update(
        contact_id: str, ws: Workspace, body: Annotated[ContactChange, Body()]
    ) -> Response:
        cmd = UpdateContact(contact_id=contact_id, **body.model_dump())  # lists -> tuples
        return await run(ws, cmd, queries.contact)

    @command("/v1/contacts/{contact_id}/merge", "contacts", "Fold another contact into this one")
    async def merge(contact_id: str, ws: Workspace, body: Annotated[Merge, Body()]) -> Response:
        cmd = MergeContacts(contact_id=contact_id, **body.model_dump())
        return await run(ws, cmd, queries.contact)

    @command(
        "/v1/contacts/{contact_id}/split",
        "contacts",
        "Detach one identity into a contact of its own",
    )
    async def split(contact_id: str, ws: Workspace, body: Annotated[Split, Body()]) -> Response:
        cmd = SplitContact(
            contact_id=contact_id,
            expected_version=body.expected_version,
            identity=Identity(channel=body.channel, external_id=body.external_id),
        )
        return await run(ws, cmd, queries.contact)

    @command("/v1/contacts/{contact_id}/erase", "contacts", "Erase a person's personal data (GDPR)")
    async def erase(contact_id: str, ws: Workspace) -> Response:
        cmd = EraseContact(contact_id=contact_id)
        return await run(ws, cmd, queries.contact)


def _campaign_routes(app: ServiceApp, deps: Wired[CrmDeps], settings: CrmSettings) -> None:
    @app.post(
        "/v1/campaigns",
        tags=["campaigns"],
        status_code=202,
        responses={422: {"description": "invalid request, unknown stage or empty segment"}},
        summary="Send one content to everyone in a segment (through outbound)",
    )
    async def campaign(ws: Workspace, body: Annotated[CampaignRequest, Body()]) -> Response:
        try:
            started = await start_campaign(deps().pool, deps().store.bus, settings, body, ws)
        except RejectedError as exc:
            return error(exc.status, exc.code, exc.message)
        return JSONResponse(asdict(started), status_code=202)
