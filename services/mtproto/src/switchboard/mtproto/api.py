"""The gateway's HTTP API: login steps, sessions, subscriptions, backfills, sends (API keys:
a key acts only on its own workspace's sessions; another workspace's session does not exist
for it) and the operator routes (ownership, key rotation: the operator token only). Login
steps run in the request and answer with their outcome; the rest is recorded for the
instance holding the session, and the routes that can wait a moment for it (subscribe,
logout) do."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from switchboard.events import Event
from switchboard.events.catalog.mtproto import (
    SESSION_ID,
    CommandRejected,
    ContactsFound,
    DeviceInfo,
    ListDialogs,
    LoginStep,
    ProxyInfo,
    SearchContacts,
    SendAsUser,
)
from switchboard.mtproto import actions, dialogs, login, session_ids
from switchboard.mtproto.leases import SESSION_PREFIX
from switchboard.mtproto.ports import AuthKeyUnregisteredError
from switchboard.mtproto.sessions import Secrets, SessionRecord
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.mtproto.telethon_adapter import load_session
from switchboard.mtproto.ttl import Parking
from switchboard.runtime.app import ServiceApp
from switchboard.runtime.auth import ApiKeyAuth, require_operator, require_scope
from switchboard.runtime.deps import NotStartedError
from switchboard.runtime.fingerprint import fingerprint, taken_reason
from switchboard.runtime.http import error
from switchboard.runtime.keys import Scope

if TYPE_CHECKING:
    from switchboard.mtproto.bootstrap import Gateway


async def _session_id(
    request: Request, session_id: Annotated[str, Path(pattern=SESSION_ID, max_length=64)]
) -> str:
    """The gateway's id of the session the caller names (ids are per workspace:
    ``session_ids``), once the caller's key holds the route's scope (refused before anything
    is looked up); ``ExternalIds`` makes the answer name the caller's id again."""
    route = request.scope.get("route")
    needed = next(
        (
            d.call.required_scope
            for d in getattr(getattr(route, "dependant", None), "dependencies", ())
            if getattr(d.call, "required_scope", None) is not None
        ),
        None,
    )
    ws = request.app.state.auth.workspace(request, needed)
    try:
        gw = request.app.state.gateway()
    except NotStartedError:  # an app called without its lifespan: nothing exists
        return session_id
    internal = await session_ids.resolve(gw.sessions, ws, session_id)
    if internal != session_id:
        request.state.session_alias = (internal, session_id)
    return internal


class ExternalIds:
    """ASGI middleware: an answer about an aliased session names the id the caller chose
    (the body is rewritten; the request, and its body limit, pass untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def answer(message: Message) -> None:
            nonlocal start
            found = scope.get("state", {}).get("session_alias")
            kind = message["type"]
            if found is None or kind not in ("http.response.start", "http.response.body"):
                await send(message)
                return
            if kind == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks).replace(found[0].encode(), found[1].encode())
            assert start is not None
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, answer)


SessionId = Annotated[str, Depends(_session_id)]
# Connecting and removing a Telegram account is an operator thing of the workspace (admin);
# reading, sending and following peers are what its integrations do (read, send).
Reader = Annotated[str, Depends(require_scope(Scope.READ))]
Sender = Annotated[str, Depends(require_scope(Scope.SEND))]
Manager = Annotated[str, Depends(require_scope(Scope.ADMIN))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(_Body):
    phone: str = Field(pattern=r"^\+?[0-9]{5,16}$")
    api_id: int | None = Field(None, ge=1, le=2**31 - 1)  # Telegram app ids are int32
    api_hash: str | None = Field(None, min_length=8)
    device: DeviceInfo | None = None
    proxy: ProxyInfo | None = None
    workspace_id: str | None = Field(None, min_length=1, description="default: the key's")


class CodeBody(_Body):
    code: str = Field(pattern=r"^[0-9]{3,10}$")


class PasswordBody(_Body):
    password: str = Field(min_length=1, max_length=256)


class ImportBody(_Body):
    """An existing, authorized StringSession (e.g. moved from another tool)."""

    session: str = Field(min_length=16)
    api_id: int = Field(ge=1, le=2**31 - 1)
    api_hash: str = Field(min_length=8)
    workspace_id: str | None = Field(None, min_length=1, description="default: the key's")
    phone: str | None = None
    device: DeviceInfo | None = None
    proxy: ProxyInfo | None = None

    @field_validator("session")
    @classmethod
    def _readable(cls, value: str) -> str:
        """A string Telethon cannot read was imported (201, active) and revoked at its
        first connect; it is refused here, as the gateway would read it (the message names
        the format, never the value)."""
        try:
            load_session(value)
        except AuthKeyUnregisteredError as exc:
            raise ValueError(str(exc)) from None
        return value


class SubscribeBody(_Body):
    peer: str = Field(min_length=1)


class BackfillBody(_Body):
    peer: str = Field(min_length=1)
    job_id: str | None = Field(None, pattern=SESSION_ID, max_length=64)
    max_messages: int | None = Field(None, ge=1)
    until: datetime | None = None


class SendBody(_Body):
    message_id: str = Field(min_length=1, max_length=200)
    peer: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=4096)
    reply_to: int | None = Field(None, ge=1)


def _result(result: actions.Result, ok_status: int | None = None) -> Response:
    if not result.ok:
        code = {400: "invalid_request", 404: "not_found", 409: "conflict"}.get(
            result.status, "error"
        )
        return error(result.status, code, result.reason or "rejected")
    return JSONResponse(result.body, ok_status or result.status)


def _outcome(outcome: login.Outcome) -> Response:
    body = outcome.body()
    if outcome.state != "failed":
        return JSONResponse(body, outcome.status)
    headers = None
    if body.get("retry_after_s") is not None:
        headers = {"Retry-After": str(body["retry_after_s"])}
    members = ("step", "error_code", "retry_after_s", "restart_required")
    details: dict[str, Any] = {k: body[k] for k in members if k in body}
    field = _FIELD_OF.get(str(body.get("error_code")))
    if field is not None:
        details["errors"] = [{"path": field, "message": str(body["message"])}]
    return error(outcome.status, str(body["reason"]), str(body["message"]), headers, **details)


# Login failures that are the request's fault name the field to fix.
_FIELD_OF = {"PROXY_UNREACHABLE": "body.proxy"}


async def _until(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


def foreign(workspace: str | None, key_workspace: str) -> bool:
    """A session of another workspace: it does not exist for this key."""
    return workspace is not None and workspace != key_workspace


def _not_found(session_id: str) -> Response:
    return error(404, "not_found", f"no session {session_id!r}")


async def _active_session(gw: Gateway, session_id: str, ws: str) -> SessionRecord | Response:
    """The workspace's session when it is active; else the answer saying why not."""
    record = await gw.sessions.get_session(session_id)
    if record is None or record.workspace_id != ws:
        return _not_found(session_id)
    if record.status != "active":
        return error(409, "conflict", f"session {session_id!r} is {record.status}")
    return record


def install(app: ServiceApp, settings: MtprotoSettings, gateway: Callable[[], Gateway]) -> None:
    """Add the API routes to the service app."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    app.state.auth = ApiKeyAuth(settings.api_keys)
    app.state.gateway = gateway
    app.add_middleware(ExternalIds)

    operator = [Depends(require_operator(token))]

    async def owned(session_id: str, ws: str) -> bool:
        return await gateway().sessions.owner(session_id) == ws

    async def unavailable(session_id: str, ws: str, named: str | None) -> Response | None:
        """Why the key cannot log in or import as ``session_id`` (None: it can): it names
        another workspace, or the id is another workspace's session or login."""
        if named is not None and named != ws:
            return error(403, "forbidden", "a key acts only for its own workspace",
                         field="workspace_id")  # fmt: skip
        if foreign(await gateway().sessions.owner(session_id), ws):
            return error(409, "conflict", f"session id {session_id!r} is not available")
        return None

    async def run_step(step: LoginStep, work: Awaitable[login.Outcome], sid: str) -> Response:
        try:
            return _outcome(await work)
        except login.SessionBusyError:
            return _outcome(await login.busy(gateway().login, sid, step))

    @app.post("/v1/sessions/{session_id}/login", tags=["login"],
              summary="Start a login: Telegram sends a code to the phone")  # fmt: skip
    async def start_login(
        session_id: SessionId, ws: Manager, body: Annotated[LoginBody, Body()]
    ) -> Response:
        if (refused := await unavailable(session_id, ws, body.workspace_id)) is not None:
            return refused
        req = login.StartRequest(
            session_id=session_id,
            workspace_id=ws,
            phone=body.phone,
            api_id=body.api_id,
            api_hash=body.api_hash,
            device=body.device,
            proxy=body.proxy,
        )
        return await run_step(LoginStep.START, login.start(gateway().login, req), session_id)

    async def submit(
        step: LoginStep, sid: str, ws: str, work: Callable[[], Awaitable[login.Outcome]]
    ) -> Response:
        """A later step of a login; another workspace's session has no login in progress."""
        if foreign(await gateway().sessions.owner(sid), ws):
            return _outcome(login.no_login_in_progress(sid, step))
        return await run_step(step, work(), sid)

    @app.post("/v1/sessions/{session_id}/login/code", tags=["login"],
              summary="Submit the login code")  # fmt: skip
    async def submit_code(
        session_id: SessionId, ws: Manager, body: Annotated[CodeBody, Body()]
    ) -> Response:
        work = partial(login.submit_code, gateway().login, session_id, body.code)
        return await submit(LoginStep.CODE, session_id, ws, work)

    @app.post("/v1/sessions/{session_id}/login/password", tags=["login"],
              summary="Submit the two-step verification password")  # fmt: skip
    async def submit_password(
        session_id: SessionId, ws: Manager, body: Annotated[PasswordBody, Body()]
    ) -> Response:
        work = partial(login.submit_password, gateway().login, session_id, body.password)
        return await submit(LoginStep.PASSWORD, session_id, ws, work)

    @app.get("/v1/sessions", tags=["sessions"], summary="The workspace's sessions")
    async def list_sessions(ws: Reader) -> Response:
        gw = gateway()
        records = await gw.sessions.list_sessions(ws)
        items = [r.public() for r in records]
        for item in items:  # the ids the workspace chose (session_ids)
            item["session_id"] = session_ids.external(ws, item["session_id"])
        return JSONResponse({"items": items})

    @app.get("/v1/sessions/{session_id}", tags=["sessions"],
             summary="A session, its subscriptions, backfills and holder")  # fmt: skip
    async def get_session(session_id: SessionId, ws: Reader) -> Response:
        gw = gateway()
        record = await gw.sessions.get_session(session_id)
        pending = await gw.sessions.get_login(session_id)
        if record is not None and record.workspace_id != ws:
            record = None
        if pending is not None and pending.workspace_id != ws:
            pending = None
        if record is None and pending is None:
            return error(404, "not_found", f"no session {session_id!r}")
        observed = gw.view.get(SESSION_PREFIX + session_id)
        body: dict[str, Any] = record.public() if record else {"session_id": session_id}
        if pending is not None:
            body["login"] = {"step": pending.step, "expires_at": pending.expires_at.isoformat()}
        body["holder"] = observed.value.owner if observed and observed.value else None
        body["subscriptions"] = [s.public() for s in await gw.state.subscriptions(session_id)]
        body["backfills"] = [j.public() for j in await gw.state.backfills(session_id)]
        return JSONResponse(body)

    @app.put("/v1/sessions/{session_id}", tags=["sessions"],
             summary="Import an authorized StringSession (stored encrypted)")  # fmt: skip
    async def import_session(
        session_id: SessionId, ws: Manager, body: Annotated[ImportBody, Body()]
    ) -> Response:
        gw = gateway()
        if (refused := await unavailable(session_id, ws, body.workspace_id)) is not None:
            return refused
        existing = await gw.sessions.status(session_id)
        if existing in ("active", "logging_out"):
            return error(409, "conflict", f"session {session_id!r} exists; log it out first")
        proxy = body.proxy
        stored = await gw.sessions.import_session(
            SessionRecord(
                session_id=session_id,
                workspace_id=ws,
                status="active",
                api_id=body.api_id,
                device=body.device or DeviceInfo(),
                proxy=proxy,
                secrets=Secrets(
                    session=body.session,
                    api_hash=body.api_hash,
                    proxy_password=proxy.password if proxy else None,
                    proxy_secret=proxy.secret if proxy else None,
                ),
                phone=body.phone,
            )
        )
        if not stored:  # imported meanwhile (by this workspace or another): ask again
            named = session_ids.external(ws, session_id)
            return error(409, "conflict", f"session id {named!r} was taken meanwhile; try again")
        record = await gw.sessions.get_session(session_id)
        assert record is not None
        return JSONResponse(record.public(), 201)

    @app.delete("/v1/sessions/{session_id}", tags=["sessions"],
                summary="Log out: revoke at Telegram and delete")  # fmt: skip
    async def logout(session_id: SessionId, ws: Manager) -> Response:
        gw = gateway()
        if not await owned(session_id, ws):
            return _not_found(session_id)
        result = await actions.logout(gw.sessions, session_id)
        if not result.ok or result.status == 200:
            return _result(result)

        async def gone() -> bool:
            return await gw.sessions.status(session_id) is None

        if await _until(gone, gw.settings.api_wait_s):
            return JSONResponse({"session_id": session_id, "status": "logged_out"})
        return _result(result)

    @app.post("/v1/sessions/{session_id}/subscriptions",
              tags=["subscriptions"], summary="Read a channel, group or chat")  # fmt: skip
    async def subscribe(
        session_id: SessionId, ws: Sender, body: Annotated[SubscribeBody, Body()]
    ) -> Response:
        gw = gateway()
        if not await owned(session_id, ws):
            return _not_found(session_id)
        result = await actions.subscribe(
            gw.sessions, gw.state, session_id, body.peer, f"http:{uuid.uuid4().hex}"
        )
        if not result.ok or result.status == 200:
            return _result(result)
        ref = str(result.body["ref"])

        async def settled() -> bool:
            sub = await gw.state.subscription(session_id, ref)
            return sub is None or sub.status != "pending"

        await _until(settled, gw.settings.api_wait_s)
        sub = await gw.state.subscription(session_id, ref)
        if sub is None or sub.status == "pending":
            return JSONResponse(result.body, 202)
        if sub.status == "failed":
            code = actions.failure_status(sub.reason)
            kind = {403: "forbidden", 404: "not_found"}.get(code, "conflict")
            return error(code, kind, sub.reason or "failed")
        return JSONResponse(sub.public(), 201)

    @app.get("/v1/sessions/{session_id}/subscriptions",
             tags=["subscriptions"], summary="What a session reads")  # fmt: skip
    async def subscriptions(session_id: SessionId, ws: Reader) -> Response:
        if not await owned(session_id, ws):
            return _not_found(session_id)
        subs = await gateway().state.subscriptions(session_id)
        return JSONResponse({"items": [s.public() for s in subs]})

    @app.delete("/v1/sessions/{session_id}/subscriptions/{ref}",
                tags=["subscriptions"], summary="Stop reading a peer")  # fmt: skip
    async def unsubscribe(session_id: SessionId, ref: str, ws: Sender) -> Response:
        gw = gateway()
        if not await owned(session_id, ws):
            return _not_found(session_id)
        result = await actions.unsubscribe(gw.state, session_id, ref)
        if result.ok:
            record = await gw.sessions.get_session(session_id)
            await gw.bus.publish(
                actions.unsubscribed(session_id, result),
                workspace_id=record.workspace_id if record else "default",
            )
        return _result(result)

    @app.post("/v1/sessions/{session_id}/backfills", tags=["backfills"],
              summary="Read a peer's history into conv events")  # fmt: skip
    async def backfill(
        session_id: SessionId, ws: Sender, body: Annotated[BackfillBody, Body()]
    ) -> Response:
        gw = gateway()
        if not await owned(session_id, ws):
            return _not_found(session_id)
        result = await actions.backfill(
            gw.sessions,
            gw.state,
            session_id=session_id,
            job_id=body.job_id or uuid.uuid4().hex,
            ref=body.peer,
            max_messages=body.max_messages,
            until=body.until,
        )
        return _result(result)

    @app.get("/v1/sessions/{session_id}/backfills/{job_id}",
             tags=["backfills"], summary="A backfill's progress")  # fmt: skip
    async def backfill_status(session_id: SessionId, job_id: str, ws: Reader) -> Response:
        if not await owned(session_id, ws):
            return _not_found(session_id)
        job = await gateway().state.backfill(session_id, job_id)
        if job is None:
            return error(404, "not_found", f"no backfill {job_id!r} for {session_id!r}")
        return JSONResponse(job.public())

    @app.post("/v1/sessions/{session_id}/messages", tags=["messages"],
              summary="Send a text as the session's user (outcome: delivery events)")  # fmt: skip
    async def send(
        session_id: SessionId, ws: Sender, body: Annotated[SendBody, Body()]
    ) -> Response:
        gw = gateway()
        record = await _active_session(gw, session_id, ws)
        if isinstance(record, Response):
            return record
        cmd = SendAsUser(session_id=session_id, **body.model_dump())
        body_print = fingerprint(cmd)
        done = await gw.state.claim_send(
            record.workspace_id, body.message_id, session_id, body_print
        )
        if done is not None and done.session_id != session_id:
            # Only ever a session of the same workspace: send ids are per workspace.
            return error(409, "id_taken", "that message_id is in use by another session")
        if done is not None and done.taken_by_another(body_print):
            return error(422, "idempotency_conflict", taken_reason(body.message_id))
        await Parking(gw.sessions.pool).wake(session_id)  # an idle session reconnects
        # A repeat publishes again: its first publish may have failed after the claim (the
        # bus drops the copy inside its duplicate window; the holder's record past it).
        await gw.bus.publish(cmd, workspace_id=record.workspace_id)
        status = "accepted" if done is None or done.attempts == 0 else done.status
        return JSONResponse({"message_id": body.message_id, "status": status}, 202)

    async def query(
        session_id: str, ws: str, make: Callable[[], ListDialogs | SearchContacts], key: str
    ) -> Response:
        gw = gateway()
        record = await _active_session(gw, session_id, ws)
        if isinstance(record, Response):
            return record
        command_id = f"mtquery:{uuid.uuid4().hex}"
        answers = dialogs.Answers(gw.sessions.pool)
        await Parking(gw.sessions.pool).wake(session_id)  # an idle session reconnects
        wait = gw.settings.api_wait_s
        model = await dialogs.ask(gw.bus, answers, make(), ws, command_id, wait)
        return _query_answer(session_id, command_id, key, model)

    def _query_answer(session_id: str, command_id: str, key: str, model: Event | None) -> Response:
        if model is None:
            # Still with the session's holder (connecting, or a slow Telegram): the answer
            # is kept for an hour at the Location given.
            location = f"/v1/sessions/{session_id}/queries/{command_id}"
            body = {"session_id": session_id, "query_id": command_id, "status": "pending"}
            return JSONResponse(body, 202, headers={"Location": location})
        if isinstance(model, CommandRejected):
            return error(model.status, "rejected", model.reason)
        found = model.model_dump(mode="json", exclude_none=True)
        return JSONResponse({"session_id": session_id, key: found[key]})

    @app.get("/v1/sessions/{session_id}/queries/{query_id}", tags=["directory"],
             summary="The answer to a dialogs or contact-search query answered 202")  # fmt: skip
    async def query_result(
        session_id: SessionId, ws: Reader, query_id: Annotated[str, Path(max_length=80)]
    ) -> Response:
        gw = gateway()
        record = await gw.sessions.get_session(session_id)
        if record is None or record.workspace_id != ws or not query_id.startswith("mtquery:"):
            return _not_found(session_id)
        model = await dialogs.Answers(gw.sessions.pool).get(query_id, session_id)
        key = "results" if isinstance(model, ContactsFound) else "dialogs"
        return _query_answer(session_id, query_id, key, model)

    @app.get("/v1/sessions/{session_id}/dialogs", tags=["directory"],
             summary="The session's dialogs, newest activity first (asks its holder)")  # fmt: skip
    async def list_dialogs(
        session_id: SessionId, ws: Reader, limit: Annotated[int, Query(ge=1, le=100)] = 100
    ) -> Response:
        return await query(
            session_id, ws, lambda: ListDialogs(session_id=session_id, limit=limit), "dialogs"
        )

    @app.get("/v1/sessions/{session_id}/contacts", tags=["directory"],
             summary="Search users, groups and channels by username or name")  # fmt: skip
    async def search_contacts(
        session_id: SessionId,
        ws: Reader,
        q: Annotated[str, Query(min_length=2, max_length=64)],
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Response:
        return await query(
            session_id,
            ws,
            lambda: SearchContacts(session_id=session_id, query=q, limit=limit),
            "results",
        )

    @app.get("/v1/ownership", dependencies=operator, tags=["sessions"],
             summary="The sessions this instance holds and connects; live instances")  # fmt: skip
    async def ownership() -> Response:
        gw = gateway()
        return JSONResponse(
            {
                "instance": gw.owner,
                "owned": gw.ownership.owned(),
                "connected": gw.ownership.connected(),
                "instances": sorted(gw.view.live_instances(settings.lease_ttl_s)),
            }
        )

    @app.post("/admin/keys/reencrypt", dependencies=operator, tags=["admin"],
              summary="Re-encrypt every stored session with the active key")  # fmt: skip
    async def reencrypt() -> Response:
        count = await gateway().sessions.reencrypt()
        return JSONResponse({"reencrypted": count})
