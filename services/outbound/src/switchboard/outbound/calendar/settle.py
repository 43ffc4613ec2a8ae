"""Carrying out a post's written change: queue its send (a new post), cancel the send it
replaces and queue the new one (a content edit), or reschedule its send (a move); or put the
post back as it was when its old send left first.

The change is written first (``Post.unsettled``), then carried out here, by the request that
wrote it and by any later read that finds it unfinished (a crash between the steps), so a
post never points at a send nobody queued nor lets an old send go out unseen. Every step is
idempotent: the send is the same body under the same id each time (a second publish is
recognised as the same send and dropped), the cancel of an already cancelled send is read
back from its record, a move already made from the send's last schedule change, and the
decision follows those, which only move forward (waiting, then done). A reader leaves a
change younger than :data:`SETTLE_GRACE` to the request still making it (which may yet undo
it on an overlap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from switchboard.outbound.attempts import Attempt, Attempts
from switchboard.outbound.calendar.posts import Post, Posts, command_of
from switchboard.outbound.schedule import Refusal, ScheduleDesk
from switchboard.runtime.bus import Bus

SETTLE_GRACE = timedelta(seconds=5)
# A move finished after its time goes this far ahead (the schedule desk's guard is 1 s).
LATE_LEAD = timedelta(seconds=2)
# Rounds of (decide, act) before giving up for now: the old send's record or the post may
# change between them (a concurrent cancel, a send leaving); the next read goes on.
MAX_ROUNDS = 4

Change = Literal["new", "edit", "move"]
Step = Literal["publish", "cancel_old", "reschedule", "settled", "roll_back", "wait"]


def change_of(post: Post) -> Change:
    """What an unsettled post's change is: a new post, new content (a new send replacing
    the old one) or a new time (the same send, rescheduled)."""
    if post.replaces is None:
        return "new"
    return "move" if post.replaces.message_id == post.message_id else "edit"


def next_step(change: Change, old: Attempt | None, moved: bool = False) -> Step:
    """What a post's unfinished change needs next, from the record of its old send and
    (a move) whether that send is already rescheduled to the post's time. Pure: tested
    without NATS."""
    if change == "new":
        return "publish"
    if change == "move" and moved:
        return "settled"
    if old is None:
        return "wait"  # the old send's record is not written yet: it is being queued
    if change == "edit" and old.status == "failed" and old.error_code == "cancelled":
        return "publish"
    if old.done:
        return "roll_back"  # the old send went out (or failed) first: the change is void
    return "cancel_old" if change == "edit" else "reschedule"


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
            step = await self._next(post)
            if step == "wait":
                return post
            old_id = post.replaces.message_id if post.replaces is not None else post.message_id
            if step == "cancel_old":
                # A refusal (cancelled meanwhile, leaving) is read back from the record.
                await self.desk.change(ws, old_id, None, None)
                continue
            if step == "reschedule":
                # Finished late (its time passed before a read came): as soon as it can.
                when = max(post.at, self.attempts.now() + LATE_LEAD)
                answer = await self.desk.change(ws, old_id, when, None)
                if not isinstance(answer, Refusal):
                    final = post.settled().model_copy(update={"at": when})
                elif answer.status == 422:
                    final = post.rolled_back()  # e.g. past the send's expires_at
                else:
                    continue  # refused while leaving or changed meanwhile: read back
            elif step == "publish":
                await self.bus.publish(command_of(post), workspace_id=ws)
                final = post.settled()
            elif step == "settled":
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

    async def _next(self, post: Post) -> Step:
        change = change_of(post)
        if change == "new":
            return "publish"
        assert post.replaces is not None
        ws, old_id = post.workspace_id, post.replaces.message_id
        moved = False
        if change == "move":
            last = await self.desk.changes.get(ws, old_id)
            moved = last is not None and last.action == "reschedule" and last.not_before == post.at
        return next_step(change, await self.attempts.get(ws, old_id), moved)

    async def settle_if_due(self, post: Post) -> Post:
        """For reads: finish a change its request should have finished by now."""
        if not due_for_repair(post, self.attempts.now()):
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
