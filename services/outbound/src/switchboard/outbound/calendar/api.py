"""HTTP API of the content calendar (same bearer keys as ``/v1/messages``): templates,
scheduled posts and the calendar view. A post is published by an ordinary scheduled send;
edits and cancels go through the schedule desk like ``/v1/messages/{id}/reschedule|cancel``.
A new post or a content edit is written as an intent and then carried out by
:class:`~switchboard.outbound.calendar.settle.Settler`; every read finishes one left
unfinished by a crash.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import AwareDatetime
from starlette.responses import JSONResponse, Response

from switchboard.events.catalog.outbound import OutContent, OutMedia, OutText, SendMessage
from switchboard.outbound.attempts import Attempts
from switchboard.outbound.calendar.posts import (
    Destination,
    NewPost,
    Post,
    PostChange,
    Posts,
    TemplateUse,
    command_of,
    in_window,
    overlap,
    post_status,
)
from switchboard.outbound.calendar.settle import Settler
from switchboard.outbound.calendar.templates import (
    MissingVariablesError,
    NewTemplate,
    Templates,
    TemplateText,
    render,
)
from switchboard.outbound.fits import unfit
from switchboard.outbound.idempotency import IdempotencyKeys
from switchboard.outbound.kvmodels import scoped
from switchboard.outbound.schedule import Refusal, ScheduleDesk
from switchboard.outbound.workspace_accounts import require_account
from switchboard.runtime.accounts import AccountCache
from switchboard.runtime.auth import Workspace
from switchboard.runtime.bus import Bus
from switchboard.runtime.fingerprint import body_fingerprint
from switchboard.runtime.http import ProblemError, ProblemResponse, error, json_body
from switchboard.runtime.ownership import NotFoundError


@dataclass
class CalendarPorts:
    bus: Bus
    accounts: AccountCache
    attempts: Attempts
    desk: ScheduleDesk
    templates: Templates
    posts: Posts
    gap: timedelta
    keys: IdempotencyKeys  # of POST /v1/calendar/posts


def _ports(request: Request) -> CalendarPorts:
    """Read in the handler, after the input is checked (bad input is answered without
    the bus, as every route's is)."""
    ports: CalendarPorts = request.app.state.calendar
    return ports


def _settler(ports: CalendarPorts) -> Settler:
    return Settler(ports.posts, ports.attempts, ports.desk, ports.bus)


router = APIRouter(tags=["calendar"])
# The bodies, validated before the handler runs (422 naming every field, with these codes).
_TEMPLATE = json_body(NewTemplate, "invalid_template")
_VERSION = json_body(TemplateText, "invalid_template")
_POST = json_body(NewPost, "invalid_post")
_CHANGE = json_body(PostChange, "invalid_post")


# -- templates -----------------------------------------------------------------------------


@router.post(
    "/v1/templates",
    status_code=201,
    summary="Create a post template (version 1); `{{ name }}` placeholders are variables",
    responses={409: {"description": "the name is taken in the workspace"}, 422: {}},
)
async def create_template(
    ws: Workspace, request: Request, new: Annotated[NewTemplate, _TEMPLATE]
) -> Response:
    ports = _ports(request)
    template = await ports.templates.create(ws, new)
    if template is None:
        return error(
            409, "template_exists", f"name: template {new.name!r} exists; PUT makes a new version",
            field="name",
        )  # fmt: skip
    return JSONResponse(template.model_dump(mode="json", exclude={"workspace_id"}), 201)


@router.get("/v1/templates", summary="The workspace's templates with their latest version")
async def list_templates(ws: Workspace, request: Request) -> Response:
    found = await _ports(request).templates.all(ws)
    return JSONResponse({"templates": [t.summary() for t in found]})


@router.get(
    "/v1/templates/{name}",
    summary="A template with every version",
    responses={404: {"description": "no such template in the key's workspace"}},
)
async def get_template(name: str, ws: Workspace, request: Request) -> Response:
    template = await _ports(request).templates.get(ws, name)
    if template is None:
        raise NotFoundError("template", name)
    return JSONResponse(template.model_dump(mode="json", exclude={"workspace_id"}))


@router.put(
    "/v1/templates/{name}",
    summary="A new version of a template (earlier versions are kept; posts name one)",
    responses={404: {"description": "no such template in the key's workspace"}, 422: {}},
)
async def new_version(
    name: str, ws: Workspace, request: Request, text: Annotated[TemplateText, _VERSION]
) -> Response:
    template = await _ports(request).templates.add_version(ws, name, text)
    if template is None:
        raise NotFoundError("template", name)
    return JSONResponse(template.model_dump(mode="json", exclude={"workspace_id"}))


# -- posts ---------------------------------------------------------------------------------


async def _content(
    ports: CalendarPorts,
    ws: str,
    destination: Destination,
    content: OutContent | None,
    use: TemplateUse | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The content to send and the template version it came from (ProblemError if not found or
    a variable is missing)."""
    if use is None:
        assert content is not None
        return content.model_dump(mode="json", exclude_none=True), None
    template = await ports.templates.get(ws, use.name)
    if template is None:
        raise NotFoundError("template", use.name)
    version = template.version(use.version)
    if version is None:
        raise NotFoundError("template version", f"{use.name}/{use.version}")
    try:
        text: OutText = render(version, use.variables, destination.channel)
    except MissingVariablesError as exc:
        raise ProblemError(
            error(
                422, "invalid_post", f"template.variables: missing {exc}",
                field=f"template.variables.{exc.names[0]}", missing=exc.names,
            )
        ) from None  # fmt: skip
    ref = {"name": use.name, "version": version.version}
    if use.media is not None:  # the text is the file's caption, in the template's markup
        captioned = OutMedia(kind=use.media.kind, source=use.media.source, caption=text.text,
                             parse_mode=text.parse_mode)  # fmt: skip
        return captioned.model_dump(mode="json", exclude_none=True), ref
    return text.model_dump(mode="json", exclude_none=True), ref


async def _checked(ports: CalendarPorts, ws: str, post: Post) -> SendMessage:
    """The send of ``post`` after the checks of its own (Problem otherwise): the account is
    the workspace's, the time is ahead and the content fits the account."""
    d, at = post.destination, post.at
    await require_account(ports.accounts, ws, d.channel, d.account)
    if at <= ports.attempts.now():  # the clock the sender judges the time by
        raise ProblemError(error(422, "invalid_post", "at: is in the past", field="at"))
    cmd = command_of(post)
    if (problem := unfit(cmd)) is not None:
        raise ProblemError(problem)
    return cmd


async def _placed(
    ports: CalendarPorts, post: Post, force: bool, previous: Post | None, revision: int = 0
) -> None:
    """Write ``post`` (a change only over the ``revision`` it was read at: two changes at
    once, one is told to try again), then look for another post to its destination within
    the gap (unless forced): on one, ``previous`` is written back (or the post removed) and
    the answer is a 409 naming the other. Written before it looks, so of two posts placed
    at once each sees the other: at worst both are refused, never both let through."""
    if previous is None:
        await ports.posts.put(post)
    elif not await ports.posts.replace(post, revision):
        raise ProblemError(_being_changed(post.post_id))
    if force:
        return
    others = await ports.posts.all(post.workspace_id)
    other = overlap(others, post.destination, post.at, ports.gap, own=post.post_id)
    if other is not None:
        if previous is None:
            await ports.posts.remove(post)
        else:
            await ports.posts.put(previous)
        raise ProblemError(
                error(
                    409, "post_overlap",
                    f"at: post {other.post_id} goes to the same destination at "
                    f"{other.at.isoformat()}, within {int(ports.gap.total_seconds())} s; "
                    "move one or send with force: true",
                    field="at", other_post_id=other.post_id, other_at=other.at.isoformat(),
                )
            )  # fmt: skip


# How a change is carried out is the calendar's own business (the view shows its result).
_INTERNAL = {"workspace_id", "unsettled", "replaces", "changed_at", "request"}


async def _view(ports: CalendarPorts, post: Post) -> dict[str, Any]:
    record = await ports.attempts.get(post.workspace_id, post.message_id)
    return {
        **post.model_dump(mode="json", exclude=_INTERNAL),
        "status": post_status(post, record),
        "reason": None if record is None else record.reason,
    }


def _refused(answer: Refusal, post: Post) -> Response:
    if answer.status == 404:  # the send's record is not written yet: it is being queued
        return error(
            409, "not_changeable", "the post's send is being queued; retry in a moment",
            headers={"Retry-After": "1"},
        )  # fmt: skip
    return error(answer.status, answer.code, f"post {post.post_id}: {answer.reason}")


@router.post(
    "/v1/calendar/posts",
    status_code=201,
    summary="Schedule a post (content, or a template with variables) to a destination",
    responses={
        404: {"description": "no such account or template in the key's workspace"},
        409: {"description": "another post to the destination is within the gap (not forced)"},
        422: {"description": "invalid post: naive or past time, missing variable, ..."},
    },
)
async def create_post(
    ws: Workspace,
    request: Request,
    new: Annotated[NewPost, _POST],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    ports = _ports(request)
    if idempotency_key is None:
        status, body = await _create(ports, ws, new, uuid.uuid4().hex, None)
        return JSONResponse(body, status)
    fp = body_fingerprint("calendar.post", new)
    # The key names the post, so a retry after a crash finds the post its first try wrote.
    post_id = scoped(ws, "post", idempotency_key)[:32]
    return await ports.keys.answered(
        ws, idempotency_key, fp, lambda: _create(ports, ws, new, post_id, fp)
    )


async def _create(
    ports: CalendarPorts, ws: str, new: NewPost, post_id: str, fp: str | None
) -> tuple[int, dict[str, Any]]:
    """Make the post ``post_id`` (or finish the one a keyed request with the same body,
    ``fp``, began before it crashed) and its answer."""
    found = None if fp is None else await ports.posts.get(ws, post_id)
    if found is not None:
        if found.request != fp:
            taken = "the Idempotency-Key was used with another request body; send new content "
            raise ProblemError(error(422, "idempotency_conflict", taken + "under a new one"))
        # the key's claim is this request's: whatever its first try left undone is ours now
        post = await _settler(ports).settle(found)
        return 201, await _view(ports, post)
    content, ref = await _content(ports, ws, new.destination, new.content, new.template)
    post = Post(
        post_id=post_id, workspace_id=ws, destination=new.destination, at=new.at,
        content=content, template=ref, message_id=f"post-{post_id}-0", unsettled=True,
        request=fp,
    )  # fmt: skip
    await _checked(ports, ws, post)
    await _placed(ports, post, new.force, None)
    post = await _settler(ports).settle(post)
    return 201, await _view(ports, post)


async def _owned(ports: CalendarPorts, ws: str, post_id: str) -> Post:
    """The workspace's post (404 otherwise), with a change a crash left unfinished done."""
    post = await ports.posts.get(ws, post_id)
    if post is None:
        raise NotFoundError("post", post_id)
    return await _settler(ports).settle_if_due(post)


async def _changeable(ports: CalendarPorts, ws: str, post_id: str) -> tuple[Post, int]:
    """The workspace's post (404 otherwise) with its revision, while it may be changed or
    cancelled: a cancelled post stays as it is (409); one with a change still being made
    by another request is a 409 to try again (changes of a post are made one at a time)."""
    await _owned(ports, ws, post_id)  # a change a crash left unfinished is finished first
    found = await ports.posts.read(ws, post_id)
    if found is None:
        raise NotFoundError("post", post_id)
    post, revision = found
    if post.cancelled:
        raise ProblemError(error(409, "not_changeable", f"post {post_id} is cancelled"))
    if post.unsettled:
        raise ProblemError(_being_changed(post_id))
    return post, revision


def _being_changed(post_id: str) -> ProblemResponse:
    return error(
        409, "not_changeable", f"post {post_id}: another change of it is being made; try again",
        headers={"Retry-After": "1"},
    )  # fmt: skip


@router.get(
    "/v1/calendar/posts/{post_id}",
    summary="A post with its status",
    responses={404: {"description": "no such post in the key's workspace"}},
)
async def get_post(post_id: str, ws: Workspace, request: Request) -> Response:
    ports = _ports(request)
    return JSONResponse(await _view(ports, await _owned(ports, ws, post_id)))


@router.patch(
    "/v1/calendar/posts/{post_id}",
    summary="Move a post or change its content until it is published (overlap re-checked)",
    responses={
        404: {"description": "no such post (or account, template) in the key's workspace"},
        409: {
            "description": "overlap with another post, the post has left / is cancelled, or "
            "another change of it is being made (Retry-After: try again)"
        },
        422: {"description": "invalid change"},
    },
)
async def change_post(
    post_id: str, ws: Workspace, request: Request, change: Annotated[PostChange, _CHANGE]
) -> Response:
    ports = _ports(request)
    post, revision = await _changeable(ports, ws, post_id)
    at = change.at or post.at
    new_content = change.content is not None or change.template is not None
    if not new_content and at == post.at:
        await _checked(ports, ws, post)  # nothing to change: still checked, as a move is
        return JSONResponse(await _view(ports, post))
    # A change is written as an intent, then carried out (a crash in between is finished
    # by the next read); the old send must be recorded to be cancelled or rescheduled.
    if await ports.attempts.get(ws, post.message_id) is None:
        return _refused(Refusal(404, "not_found", "being queued"), post)
    intent = {"at": at, "unsettled": True, "replaces": post.version(),
              "changed_at": ports.attempts.now()}  # fmt: skip
    if new_content:
        # New content is a new send: the old one is cancelled first (it cannot leave after).
        content, ref = await _content(ports, ws, post.destination, change.content, change.template)
        edits = post.edits + 1
        intent |= {"content": content, "template": ref, "edits": edits,
                   "message_id": f"post-{post.post_id}-{edits}"}  # fmt: skip
    edited = post.model_copy(update=intent)
    await _checked(ports, ws, edited)
    await _placed(ports, edited, change.force, post, revision)
    done = await _settler(ports).settle(edited)
    if done.at != edited.at or done.edits != edited.edits:  # rolled back: the send left
        return error(
            409, "not_changeable", f"post {post_id}: the send cannot be changed: it has left"
        )
    if done.unsettled:  # the old send is leaving this very moment: the next read decides
        return error(
            409, "not_changeable", f"post {post_id}: its send is leaving; read it again",
            headers={"Retry-After": "1"},
        )  # fmt: skip
    return JSONResponse(await _view(ports, done))


@router.post(
    "/v1/calendar/posts/{post_id}/cancel",
    summary="Cancel a post until it is published",
    responses={
        404: {"description": "no such post in the key's workspace"},
        409: {
            "description": "the post has left, is leaving, or is cancelled, or another change "
            "of it is being made (Retry-After: try again)"
        },
    },
)
async def cancel_post(post_id: str, ws: Workspace, request: Request) -> Response:
    ports = _ports(request)
    stopped: set[str] = set()  # the sends this request cancelled
    for _ in range(_CANCEL_ROUNDS):
        post, revision = await _changeable(ports, ws, post_id)
        if post.message_id not in stopped:
            answer = await ports.desk.change(ws, post.message_id, None, None)
            if isinstance(answer, Refusal):
                return _refused(answer, post)
            stopped.add(post.message_id)
        cancelled = post.model_copy(update={"cancelled": True})
        # A change written meanwhile (its request read the post before this cancel wrote
        # it): the post is read again, and a send it put in place is cancelled too.
        if await ports.posts.replace(cancelled, revision):
            return JSONResponse(await _view(ports, cancelled))
    return _being_changed(post_id)


_CANCEL_ROUNDS = 4


@router.get(
    "/v1/calendar",
    summary="What goes out when: the workspace's posts with from <= at < to, by time, "
    "with their status",
    responses={422: {"description": "from or to without a timezone"}},
)
async def calendar(
    ws: Workspace,
    request: Request,
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
) -> Response:
    ports = _ports(request)
    settler = _settler(ports)
    posts = [
        await settler.settle_if_due(p)
        for p in await ports.posts.all(ws)
        if in_window(p, start, end)
    ]
    return JSONResponse({"posts": [await _view(ports, p) for p in posts]})
