"""Scheduled posts: a post is one scheduled send (``not_before`` = its time) plus what the
calendar needs to show and check it. The send itself is outbound's ordinary scheduled send,
so it survives restarts and is cancelled or moved by the schedule desk, never a second timer.
A new post or a content edit is written first as an intent (``unsettled``) and carried out
after (:mod:`switchboard.outbound.calendar.settle`), so a crash between the steps leaves a
post that the next read finishes, never one pointing at a send nobody queued.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from nats.js.kv import KeyValue
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.outbound import MediaSource, OutContent, SendMessage
from switchboard.outbound.attempts import Attempt
from switchboard.outbound.calendar.kv import key, values
from switchboard.outbound.calendar.templates import NAME
from switchboard.runtime.kv import KvModels


class Destination(BaseModel):
    """Where a post goes: a channel account and the chat (a Telegram channel by bot or user
    account, a WhatsApp or Viber recipient)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    channel: Channel
    account: str = Field(min_length=1)
    chat: str = Field(min_length=1, description="provider chat id, @channel, phone or user id")


class TemplateMedia(BaseModel):
    """A file a post made from a template carries, the rendered text as its caption."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["photo", "video", "audio", "voice", "document", "animation"]
    source: MediaSource


class TemplateUse(BaseModel):
    """A post made from a template: its name, a version (None: the latest), the values,
    and the file the text is the caption of (None: a text post)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)
    version: int | None = Field(None, ge=1)
    variables: dict[str, str] = Field(default_factory=dict)
    media: TemplateMedia | None = None


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: OutContent | None = None
    template: TemplateUse | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _Content:
        if self.content is not None and self.template is not None:
            raise ValueError("give content or template, not both")
        return self


class NewPost(_Content):
    destination: Destination
    at: AwareDatetime
    force: bool = False

    @model_validator(mode="after")
    def _has_source(self) -> NewPost:
        if self.content is None and self.template is None:
            raise ValueError("give content or template")
        return self


class PostChange(_Content):
    """A PATCH: a new time, new content (or template), or both."""

    at: AwareDatetime | None = None
    force: bool = False


class PostVersion(BaseModel):
    """What a post was before a content edit in progress: put back if the edit cannot be
    made (its send left first)."""

    at: datetime
    content: dict[str, Any]
    template: dict[str, Any] | None = None
    message_id: str
    edits: int = 0


class Post(BaseModel):
    """One post of the calendar; ``message_id`` is the scheduled send that publishes it
    (a new one after a content change, the old one cancelled). ``unsettled``: the post is
    written but its send may not be queued yet (and ``replaces``, when set, may still wait);
    whoever reads it next finishes that."""

    post_id: str
    workspace_id: str
    destination: Destination
    at: datetime
    content: dict[str, Any]
    template: dict[str, Any] | None = None  # {"name", "version"} it was rendered from
    message_id: str
    edits: int = 0
    cancelled: bool = False
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    unsettled: bool = False
    replaces: PostVersion | None = None
    changed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # The fingerprint of the keyed request (``Idempotency-Key``) that made it, if one did.
    request: str | None = None

    def version(self) -> PostVersion:
        return PostVersion(
            at=self.at,
            content=self.content,
            template=self.template,
            message_id=self.message_id,
            edits=self.edits,
        )

    def settled(self) -> Post:
        """This post with its change carried out."""
        return self.model_copy(update={"unsettled": False, "replaces": None})

    def rolled_back(self) -> Post:
        """This post as it was before its change (which could not be made)."""
        assert self.replaces is not None
        return self.model_copy(
            update={**self.replaces.model_dump(), "unsettled": False, "replaces": None}
        )


def command_of(post: Post) -> SendMessage:
    """The scheduled send that publishes ``post`` (the same body every time it is made, so a
    repeat is recognised as the same send and never sent twice)."""
    d = post.destination
    return SendMessage.model_validate(
        {
            "message_id": post.message_id,
            "channel": d.channel,
            "account": d.account,
            "recipient": d.chat,
            "content": post.content,
            "not_before": post.at,
        }
    )


PostStatus = Literal["scheduled", "publishing", "published", "failed", "cancelled"]
_STATUS: dict[str, PostStatus] = {
    "queued": "scheduled",
    "in_flight": "publishing",
    "retrying": "publishing",
    "moved": "publishing",
    "sent": "published",
    "failed": "failed",
}


def post_status(post: Post, record: Attempt | None) -> PostStatus:
    """What the calendar shows: from the post's send record (none yet: still scheduled)."""
    if post.cancelled:
        return "cancelled"
    return "scheduled" if record is None else _STATUS.get(record.status, "publishing")


def overlap(
    posts: Iterable[Post],
    destination: Destination,
    at: datetime,
    gap: timedelta,
    own: str | None = None,
) -> Post | None:
    """The post nearest to ``at`` that goes to the same destination less than ``gap`` away
    (not cancelled, not ``own`` itself), or None. Pure: tested without NATS."""
    near = [
        p
        for p in posts
        if p.post_id != own
        and not p.cancelled
        and p.destination == destination
        and abs(p.at - at) < gap
    ]
    return min(near, key=lambda p: (abs(p.at - at), p.post_id)) if near else None


def in_window(post: Post, start: datetime | None, end: datetime | None) -> bool:
    """``start <= at < end`` (an open side when None)."""
    return (start is None or post.at >= start) and (end is None or post.at < end)


class Posts:
    """Posts in the ``calendar`` bucket, one key per post."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self._records = KvModels(kv, Post)

    async def get(self, workspace: str, post_id: str) -> Post | None:
        return await self._records.get(key("post", workspace, post_id))

    async def read(self, workspace: str, post_id: str) -> tuple[Post, int] | None:
        """The post with its KV revision (for :meth:`replace`)."""
        return await self._records.read(key("post", workspace, post_id))

    async def replace(self, post: Post, revision: int) -> bool:
        """Write ``post`` if its key is still at ``revision`` (False: it changed meanwhile)."""
        return await self._records.replace(_key(post), post, revision)

    async def put(self, post: Post) -> None:
        await self._records.put(_key(post), post)

    async def remove(self, post: Post) -> None:
        await self.kv.delete(_key(post))

    async def all(self, workspace: str) -> list[Post]:
        found = [
            Post.model_validate(orjson.loads(v)) for v in await values(self.kv, "post", workspace)
        ]
        return sorted(found, key=lambda p: (p.at, p.post_id))


def _key(post: Post) -> str:
    return key("post", post.workspace_id, post.post_id)
