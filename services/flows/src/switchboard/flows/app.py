"""The flows service's composition root: the live flow library, the conversation and timer
consumers, and the HTTP API (flow documents, dry runs, runs)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from switchboard.events.catalog.common import Channel
from switchboard.events.streams import FLOW_TIMERS
from switchboard.flows import document, dryrun, runs
from switchboard.flows.bootstrap import FlowsDeps, bootstrap
from switchboard.flows.library import FlowError, FlowLibrary, FlowState
from switchboard.flows.menus import MenuKeeper
from switchboard.flows.runner import CONVERSATIONS, CRM_EVENTS, TIMERS
from switchboard.flows.settings import FlowsSettings
from switchboard.flows.triggers import overlaps
from switchboard.runtime import pii, subscribers
from switchboard.runtime.accounts import account_workspace
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.auth import ApiKeyAuth, require_scope
from switchboard.runtime.deps import Wired
from switchboard.runtime.http import error
from switchboard.runtime.keys import Scope
from switchboard.runtime.schedules import require_schedules
from switchboard.runtime.service import Runtime

# What each route needs, declared so the OpenAPI document says it (docs/security.md
# "Credentials"): reading flows and runs needs ``read``; anything that stores, publishes,
# archives or hands a run back needs ``send``, and so do validate and dry-run (POSTs, by the
# one rule, though they store nothing: a key that may only read does not author flows).
Reader = Annotated[str, Depends(require_scope(Scope.READ))]
Sender = Annotated[str, Depends(require_scope(Scope.SEND))]
# A flow document is JSON or YAML (by Content-Type), so the body is read and parsed here
# rather than by FastAPI; the OpenAPI document still says what it is.
DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "a flow document (GET /v1/flows/schema), as JSON or YAML",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "object"}},
        },
    }
}


async def read_document(
    request: Request,
    known_secrets: Callable[[str], bool],
    owner: Callable[[Channel, str], Awaitable[str | None]],
    workspace: str,
) -> Any:
    """The request's flow document, parsed as its Content-Type says and validated (422 with
    every problem's path, a signing secret the workspace has not and an account of its
    ``channels`` that is not the workspace's among them), before anything touches the bus."""
    data = document.parse(await request.body(), request.headers.get("content-type"))
    doc = document.validate(data, known_secrets)
    owners = {
        (scope.channel, scope.account): await owner(scope.channel, scope.account)
        for scope in doc.channels
        if scope.account
    }
    problems = document.foreign_accounts(doc, {k for k, ws in owners.items() if ws == workspace})
    if problems:
        raise document.InvalidFlowError(problems)
    return data


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    revision: int | None = Field(None, ge=1, description="default: the latest revision")


def create_app(settings: FlowsSettings) -> ServiceApp:
    """Build the flows app; connections are made by its lifespan, never at import."""
    deps: Wired[FlowsDeps] = Wired("flows")

    async def start(rt: Runtime) -> None:
        await pii.start(rt)  # conversation events carry sealed personal data
        await require_schedules(rt.bus, FLOW_TIMERS.name, "flows", "delays and timeouts")
        built = await bootstrap(rt, settings)
        deps.set(built)
        library, schedules, runner = built.library, built.schedules, built.runner
        keeper = MenuKeeper(rt.bus)

        async def keep_menus() -> None:
            for ws in sorted(library.workspaces()):
                await keeper.keep(ws, library.published(ws))
                await schedules.keep(ws, library.published(ws))

        rt.spawn("library", lambda: library.follow(rt.stop, on_change=keep_menus))

        async def library_ready() -> bool:
            return library.caught_up.is_set()

        rt.health.add("flows_library", library_ready)
        consumers = {
            replace(CONVERSATIONS, concurrency=settings.concurrency): runner.on_conversation,
            replace(CRM_EVENTS, concurrency=settings.concurrency): runner.on_crm,
            replace(TIMERS, concurrency=settings.concurrency): runner.on_timer,
        }
        subscribers.spawn(rt, "consumers", consumers)

    app = service_app(
        service="flows",
        settings=settings,
        start=start,
        title="Switchboard flows",
        description="Bot scenarios: flow documents validated against a published JSON Schema, "
        "kept as events (every revision), published and archived; runs that react to "
        "conversations exactly once, with durable delays and timeouts; dry runs.",
    )
    app.state.auth = ApiKeyAuth(settings.api_keys)
    _routes(app, deps, settings)
    return app


def _summary(state: FlowState) -> dict[str, Any]:
    return {**state.summary(), "revisions": sorted(state.revisions)}


def _body_path(json_path: str) -> str:
    """A document's JSON path (``$.steps.ask.choices[0]``) as a problem's field path
    (``body.steps.ask.choices[0]``): the document is the request body."""
    return "body" + json_path.removeprefix("$")


def _invalid(exc: document.InvalidFlowError) -> Response:
    """422 as a problem document whose ``errors`` name every path of the document."""
    errors = [{"path": _body_path(p["path"]), "message": p["reason"]} for p in exc.problems]
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return error(422, "invalid_flow", f"{first['path']}: {first['message']}{more}", errors=errors)


def _routes(app: ServiceApp, deps: Wired[FlowsDeps], settings: FlowsSettings) -> None:
    def library() -> FlowLibrary:
        return deps().library

    async def read(request: Request, ws: str) -> Any:
        def known(name: str) -> bool:
            return settings.webhook_secret(ws, name) is not None

        async def owner(channel: Channel, account: str) -> str | None:
            return await account_workspace(deps().accounts, channel, account)

        return await read_document(request, known, owner, ws)

    @app.exception_handler(FlowError)
    async def _flow_error(_: Request, exc: FlowError) -> Response:
        return error(exc.status, exc.code, exc.message)

    @app.exception_handler(document.InvalidFlowError)
    async def _invalid_flow(_: Request, exc: document.InvalidFlowError) -> Response:
        return _invalid(exc)

    @app.get("/v1/flows/schema", tags=["flows"], summary="The JSON Schema of flow documents")
    async def schema(_: Reader) -> Response:
        return JSONResponse(document.json_schema(), media_type="application/schema+json")

    @app.post(
        "/v1/flows/validate",
        tags=["flows"],
        summary="Validate a document, store nothing",
        openapi_extra=DOCUMENT_BODY,
    )
    async def check(ws: Sender, request: Request) -> Response:
        await read(request, ws)
        return JSONResponse({"valid": True})

    @app.post(
        "/v1/flows",
        tags=["flows"],
        status_code=201,
        summary="Create a flow (revision 1)",
        openapi_extra=DOCUMENT_BODY,
    )
    async def create(ws: Sender, request: Request) -> Response:
        data = await read(request, ws)
        state = await library().save(ws, data)
        return JSONResponse(_summary(state), 201)

    @app.get("/v1/flows", tags=["flows"], summary="The flows of the workspace")
    async def listing(ws: Reader) -> Response:
        return JSONResponse({"items": [_summary(f) for f in library().listing(ws)]})

    @app.get("/v1/flows/{flow_id}", tags=["flows"], summary="A flow and its latest document")
    async def one(flow_id: str, ws: Reader) -> Response:
        state = await library().load(flow_id, ws)
        return JSONResponse({**_summary(state), "document": state.revisions[state.latest]})

    @app.put(
        "/v1/flows/{flow_id}",
        tags=["flows"],
        summary="Save a new revision",
        openapi_extra=DOCUMENT_BODY,
    )
    async def revise(flow_id: str, ws: Sender, request: Request) -> Response:
        data = await read(request, ws)
        state = await library().save(ws, data, flow_id=flow_id)
        return JSONResponse(_summary(state))

    @app.get("/v1/flows/{flow_id}/revisions/{revision}", tags=["flows"], summary="One revision")
    async def revision(flow_id: str, revision: int, ws: Reader) -> Response:
        state = await library().load(flow_id, ws)
        if revision not in state.revisions:
            return error(404, "not_found", f"flow {flow_id!r} has no revision {revision}")
        return JSONResponse({"revision": revision, "document": state.revisions[revision]})

    @app.post("/v1/flows/{flow_id}/publish", tags=["flows"], summary="Make a revision live")
    async def publish(
        flow_id: str, ws: Sender, body: Annotated[PublishRequest | None, Body()] = None
    ) -> Response:
        rev = body.revision if body else None
        state = await library().publish(ws, flow_id, rev)
        answer = _summary(state)
        doc = library().document_of(state, state.published) if state.published else None
        shared = overlaps(flow_id, doc, library().published(ws)) if doc else []
        if shared:  # published all the same: saying so is the point, not refusing
            answer["overlaps"] = shared
        return JSONResponse(answer)

    @app.post("/v1/flows/{flow_id}/archive", tags=["flows"], summary="Stop starting new runs")
    async def archive(flow_id: str, ws: Sender) -> Response:
        return JSONResponse(_summary(await library().archive(ws, flow_id)))

    @app.post(
        "/v1/flows/{flow_id}/dry-run", tags=["flows"], summary="Play a transcript, send nothing"
    )
    async def dry_run(flow_id: str, ws: Sender, body: Annotated[dryrun.DryRun, Body()]) -> Response:
        state = await library().load(flow_id, ws)
        rev = body.revision or state.latest
        doc = library().document_of(state, rev)
        if doc is None:
            return error(404, "not_found", f"flow {flow_id!r} has no revision {rev}")
        return JSONResponse({"revision": rev, "decisions": dryrun.play(doc, body)})

    @app.get("/v1/runs", tags=["runs"], summary="Runs and where each one is")
    async def run_list(
        ws: Reader,
        flow_id: Annotated[str | None, Query(min_length=1)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        items = await runs.latest_runs(deps().bus, ws, flow_id, limit)
        return JSONResponse({"items": items})

    @app.post("/v1/runs/{run_id}/release", tags=["runs"], summary="A person hands the run back")
    async def release(run_id: str, ws: Sender) -> Response:
        found = await deps().runner.release(run_id, ws)
        if found is None:
            return error(404, "not_found", f"no run {run_id!r}")
        if not found:
            return error(409, "not_handed_off", f"run {run_id!r} is not with a person")
        detail = await runs.run_history(deps().bus, ws, run_id)
        return JSONResponse(detail)

    @app.get("/v1/runs/{run_id}", tags=["runs"], summary="A run with its history")
    async def run_detail(run_id: str, ws: Reader) -> Response:
        found = await runs.run_history(deps().bus, ws, run_id)
        if found is None:
            return error(404, "not_found", f"no run {run_id!r}")
        return JSONResponse(found)
