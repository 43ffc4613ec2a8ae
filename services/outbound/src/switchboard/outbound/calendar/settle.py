"""Carrying out a post's written change: queue its send, after cancelling the send it
replaces (a content edit), or put the post back as it was when that send left first.

The change is written first (``Post.unsettled``), then carried out here, by the request that
wrote it and by any later read that finds it unfinished (a crash between the steps), so a
post never points at a send nobody queued nor lets an old send go out unseen. Every step is
idempotent: the send is the same body under the same id each time (a second publish is
recognised as the same send and dropped), the cancel of an already cancelled send is read
back from its record, and the decision follows that record, which only moves forward
(waiting, then done). A reader leaves a change younger than :data:`SETTLE_GRACE` to the
request still making it (which may yet undo it on an overlap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from switchboard.outbound.attempts import Attempt, Attempts
from switchboard.outbound.calendar.posts import Post, Posts, command_of
from switchboard.outbound.schedule import ScheduleDesk
from switchboard.runtime.bus import Bus

SETTLE_GRACE = timedelta(seconds=5)
# Rounds of (decide, act) before giving up for now: the old send's record or the post may
# change between them (a concurrent cancel, a send leaving); the next read goes on.
MAX_ROUNDS = 4

Step = Literal["publish", "cancel_old", "roll_back", "wait"]


def next_step(replaces: bool, old: Attempt | None) -> Step:
    """What a post's unfinished change needs next, from the record of the send it replaces
    (``replaces`` False: a new post, nothing to cancel). Pure: tested without NATS."""
    if not replaces:
        return "publish"
    if old is None:
        return "wait"  # the old send's record is not written yet: it is being queued
    if old.status == "failed" and old.error_code == "cancelled":
        return "publish"
    if old.done:
        return "roll_back"  # the old send went out (or failed) first: the edit is void
    return "cancel_old"


def due_for_repair(post: Post, now: datetime) -> bool:
    """A read finishes a change only once the request making it has had time to."""
    return post.unsettled and now - post.changed_at >= SETTLE_GRACE


@dataclass
class Settler:
    """Carries out unsettled changes of posts (see the module's docstring)."""

    posts: Posts
    attempts: Attempts
    desk: ScheduleDesk
    bus: Bus

    async def settle(self, post: Post) -> Post:
        """``post`` with its change carried out or rolled back; still unsettled when that
        cannot be decided yet (the old send is being queued or is leaving right now)."""
        ws = post.workspace_id
        for _ in range(MAX_ROUNDS):
            if not post.unsettled:
                return post
            replaced = post.replaces
            old = None if replaced is None else await self.attempts.get(ws, replaced.message_id)
            step = next_step(replaced is not None, old)
            if step == "wait":
                return post
            if step == "cancel_old":
                assert replaced is not None
                # A refusal (cancelled meanwhile, leaving) is read back from the record.
                await self.desk.change(ws, replaced.message_id, None, None)
                continue
            if step == "publish":
                await self.bus.publish(command_of(post), workspace_id=ws)
                final = post.settled()
            else:
                final = post.rolled_back()
            written = await self._write(final, post)
            if written is not None:
                return written
            found = await self.posts.get(ws, post.post_id)
            if found is None:
                return final
            post = found
        return post

    async def settle_if_due(self, post: Post) -> Post:
        """For reads: finish a change its request should have finished by now."""
        if not due_for_repair(post, datetime.now(UTC)):
            return post
        return await self.settle(post)

    async def _write(self, final: Post, intent: Post) -> Post | None:
        """Write ``final`` over ``intent`` if the post still holds that change; the post as
        it now is otherwise (another reader or a newer change came first); None: retry."""
        found = await self.posts.read(intent.workspace_id, intent.post_id)
        if found is None:
            return final  # removed (its placement was refused): nothing to write back
        current, revision = found
        if not current.unsettled or current.message_id != intent.message_id:
            return current
        if await self.posts.replace(final, revision):
            return final
        return None
