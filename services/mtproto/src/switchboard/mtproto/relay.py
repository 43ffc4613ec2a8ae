"""Outbound's sends through a user session: ``cmd.mtproto.deliver.v1.<session>``.

Outbound owns a send (its record, retries, shared rate limits, ``delivery.*`` events); the
gateway owns the connection. Only the session's holder pulls the session's durable consumer,
calls Telegram at most once per ``message_id`` of the workspace (the ``sends`` table), and
answers every command it reads on the inbox its sender named (``reply-to`` header) with a
``DeliverResult``. It never holds a command through a flood wait: it answers ``flood_wait``
at once (nothing sent), so outbound pauses the account for every instance and a campaign
moves the account's recipients to others. A command read after its deadline is dropped
unsent: its sender stopped waiting and decides again.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from switchboard.events.catalog.common import Chat
from switchboard.events.catalog.mtproto import (
    ChangeAsUser,
    DeliverAsUser,
    DeliverResult,
    FloodWaited,
)
from switchboard.events.catalog.outbound import OutLocation, OutMedia, OutText
from switchboard.mtproto import reads
from switchboard.mtproto.command_feed import CommandFeed
from switchboard.mtproto.convert import chat_id, chat_of
from switchboard.mtproto.holder_serve import H
from switchboard.mtproto.metrics import FLOOD_WAIT_SECONDS, FLOOD_WAITS, SENDS
from switchboard.mtproto.ports import (
    AuthKeyDuplicatedError,
    AuthKeyUnregisteredError,
    DisconnectedError,
    FloodWaitError,
    Message,
    MtprotoClient,
    MtprotoError,
    OutboxRead,
    OutgoingMedia,
    Peer,
    UserDeactivatedError,
)
from switchboard.mtproto.sessions import SessionStore
from switchboard.mtproto.state import StateStore
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.logging import get_logger
from switchboard.runtime.markup import FORMAT_OF, Span, spans
from switchboard.runtime.objectstore import ObjectStore
from switchboard.runtime.uploads import inline_upload

log = get_logger(__name__)
# Telegram's answer when the account is restricted for spam: it cannot write to strangers.
RESTRICTED = ("PEER_FLOOD", "USER_RESTRICTED")
# Restrictions last hours to days and Telegram does not say how long: the account is left
# alone this long, then the next send finds out whether it still is.
RESTRICTED_HOLD = timedelta(hours=1)
_UNUSABLE = (AuthKeyDuplicatedError, AuthKeyUnregisteredError, UserDeactivatedError)
_MEDIA_KINDS = ("photo", "video", "audio", "voice", "document", "animation")


def deliver_consumer(session_id: str) -> str:
    """The durable consumer of one session's deliveries (pulled by its holder only)."""
    return f"mtproto-deliver-{session_id}"


def deliver_subject(session_id: str) -> str:
    return f"cmd.{DeliverAsUser.name}.v{DeliverAsUser.version}.{session_id}"


def change_consumer(session_id: str) -> str:
    """The durable consumer of one session's edits and deletions (its holder's only)."""
    return f"mtproto-change-{session_id}"


def change_subject(session_id: str) -> str:
    return f"cmd.{ChangeAsUser.name}.v{ChangeAsUser.version}.{session_id}"


@dataclass(frozen=True)
class Outgoing:
    """What one send puts in the chat: a text, or media with an optional caption, and the
    spans that format the text or caption."""

    text: str | None = None
    media: OutgoingMedia | None = None
    caption: str | None = None
    spans: tuple[Span, ...] = ()


def outgoing(cmd: DeliverAsUser) -> Outgoing | DeliverResult:
    """The content as the port sends it, or the refusal of content a user account cannot
    send (sticker, media group and template sends, bot file ids)."""
    content = cmd.content
    if isinstance(content, OutText):
        return formatted(content.text, content.parse_mode)
    if isinstance(content, OutLocation):
        where = OutgoingMedia("location", latitude=content.latitude, longitude=content.longitude)
        return Outgoing(media=where)
    if isinstance(content, OutMedia) and content.kind in _MEDIA_KINDS:
        source = content.source
        if source.file_id:
            return _unsupported("a file_id names a bot's file; send user media by url or data")
        data = None
        if source.data_base64:
            try:
                data = base64.b64decode(source.data_base64, validate=True)
            except (binascii.Error, ValueError):
                return _unsupported("content.source.data_base64 is not base64")
        media = OutgoingMedia(
            kind=content.kind,  # type: ignore[arg-type]  # narrowed by _MEDIA_KINDS
            url=source.url,
            data=data,
            file_name=source.file_name,
            mime_type=source.mime_type,
        )
        if content.caption is None:
            return Outgoing(media=media)
        caption = formatted(content.caption, content.parse_mode)
        if isinstance(caption, DeliverResult):
            return caption
        return Outgoing(media=media, caption=caption.text, spans=caption.spans)
    return _unsupported(f"a user account cannot send {content.kind} content")


def formatted(text: str, mode: str | None) -> Outgoing | DeliverResult:
    """A text with a Bot API parse mode as the port sends it. A user account has no parse
    mode: its client sends entities (what a bot's parse mode makes of the text), so a post
    reads the same from either."""
    if mode is None:
        return Outgoing(text=text)
    if mode not in FORMAT_OF:
        return _unsupported(f"a user account reads HTML or MarkdownV2, not {mode}")
    words, found = spans(text, FORMAT_OF[mode])
    return Outgoing(text=words, spans=found)


def _unsupported(reason: str) -> DeliverResult:
    return DeliverResult(status="refused", error_code="unsupported_content", reason=reason)


def classify(exc: MtprotoError) -> DeliverResult:
    """A Telegram error on a send -> the answer (a flood wait is handled before)."""
    if isinstance(exc, _UNUSABLE) or exc.reason in RESTRICTED:
        return DeliverResult(status="unusable", error_code=exc.reason, reason=str(exc))
    if isinstance(exc, DisconnectedError):
        return DeliverResult(status="retry", error_code=exc.reason, reason=str(exc))
    return DeliverResult(status="refused", error_code=exc.reason, reason=str(exc))


def _last_word(exc: Exception) -> DeliverResult | None:
    """A dead key is answered (and the runner revokes the session); a dropped connection is
    not: the command goes back to the next holder."""
    return classify(exc) if isinstance(exc, _UNUSABLE) else None


def _feed(
    kind: type[H], consumer: Callable[[str], str], subject: Callable[[str], str]
) -> CommandFeed[H, DeliverResult]:
    """Outbound's commands to a session (sends, changes), answered with a DeliverResult."""
    return CommandFeed(
        kind,
        DeliverResult,
        consumer,
        subject,
        ack_wait_s=60.0,
        batch=8,
        fatal=(DisconnectedError, *_UNUSABLE),
        last_word=_last_word,
    )


_DELIVERIES = _feed(DeliverAsUser, deliver_consumer, deliver_subject)
_CHANGES = _feed(ChangeAsUser, change_consumer, change_subject)
# What Telegram answers an edit or deletion already made: a repeat (a redelivery after the
# first call went through) is applied, not refused.
_ALREADY = ("MESSAGE_NOT_MODIFIED",)


@dataclass
class Relay:
    """Serves one session's deliveries while its holder is connected."""

    bus: Bus
    state: StateStore
    sessions: SessionStore
    session_id: str
    workspace_id: Callable[[], str]
    resolve: Callable[[MtprotoClient, str], Awaitable[Peer]]
    emit: Callable[[FloodWaited], Awaitable[None]]
    sleep: Callable[[float], Awaitable[None]]
    # Between two sends of the session unless the command names the account's pace: one
    # holder sends them one by one, so a burst queued by a stall still leaves paced.
    interval_s: float = 1.0
    paused_until: datetime | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    last_call: float = 0.0
    # Tells the accounts registry the account is restricted until then (None: nobody).
    on_restricted: Callable[[datetime], Awaitable[None]] | None = None
    # Called for each command: a session that delivers is in use (session TTL, ttl.py).
    on_delivery: Callable[[], None] | None = None
    # Called with the peer and the message once a send went out (the holder follows the
    # private chats it writes to: runner.follow).
    on_sent: Callable[[Peer, int], Awaitable[None]] | None = None
    # Where outbound keeps uploaded files (the store it shares): a send naming an upload
    # is read from there, as outbound's sender reads it for a bot.
    objects: ObjectStore | None = None

    async def run(self, client: MtprotoClient) -> None:
        """Serve the session's deliveries; a dropped connection naks its command and raises."""
        record = await self.sessions.get_session(self.session_id)
        if record is not None and record.send_paused_until is not None:
            self.paused_until = max(self.paused_until or record.send_paused_until,
                                    record.send_paused_until)  # fmt: skip
        await _DELIVERIES.serve(
            self, lambda cmd, workspace: self.deliver(client, cmd, workspace), self.on_delivery
        )

    async def changes(self, client: MtprotoClient) -> None:
        """Serve the session's edits and deletions of its messages while connected."""
        await _CHANGES.serve(
            self, lambda cmd, workspace: self.change(client, cmd), self.on_delivery
        )

    async def change(self, client: MtprotoClient, cmd: ChangeAsUser) -> DeliverResult:
        """Edit or delete one message the session sent. A flood wait answers at once, as a
        send's does (nothing changed); a repeat of a change made is applied."""
        paused = self.paused_until
        if paused is not None and paused > self.now():
            wait = (paused - self.now()).total_seconds()
            return DeliverResult(status="flood_wait", error_code="FLOOD_WAIT", retry_after=wait,
                                 reason=f"the account waits {wait:.1f} s more")  # fmt: skip
        plan = formatted(cmd.text or cmd.caption or "", cmd.parse_mode)
        if isinstance(plan, DeliverResult):
            return plan
        try:
            peer = await self.resolve(client, cmd.peer)
            if cmd.action == "delete":
                if not await client.delete_messages(peer, [cmd.provider_message_id]):
                    # worded as the Bot API's: a redelivery after the first call went
                    # through counts it applied (outbound.interactions.already_done)
                    return DeliverResult(status="refused", error_code="MESSAGE_ID_INVALID",
                                         reason="message to delete not found")  # fmt: skip
            else:
                assert plan.text is not None
                await client.edit_message(
                    peer, cmd.provider_message_id, plan.text, spans=plan.spans
                )
        except FloodWaitError as exc:
            return await self._flood(exc)
        except (DisconnectedError, *_UNUSABLE):
            raise
        except MtprotoError as exc:
            if exc.reason in _ALREADY:
                return DeliverResult(
                    status="sent", provider_message_id=str(cmd.provider_message_id)
                )
            return classify(exc)
        return DeliverResult(status="sent", provider_message_id=str(cmd.provider_message_id))

    async def deliver(
        self, client: MtprotoClient, cmd: DeliverAsUser, workspace: str
    ) -> DeliverResult:
        """Send one delivery command through the session, once: a send already done answers
        as it ended."""
        done = await self.state.send_record(workspace, cmd.message_id)
        if done is not None and done.status == "sent":
            chat = await self._chat(client, cmd.peer)
            return DeliverResult(
                status="sent",
                provider_message_id=done.provider_message_id,
                chat_id=done.chat_id,
                chat_type=None if chat is None else chat.type.value,
                chat_title=None if chat is None else chat.title,
            )
        if done is not None and done.status == "failed":
            reason = done.reason or "refused"
            return DeliverResult(status="refused", error_code=reason, reason=reason)
        paused = self.paused_until
        if paused is not None and paused > self.now():
            wait = (paused - self.now()).total_seconds()
            return DeliverResult(status="flood_wait", error_code="FLOOD_WAIT", retry_after=wait,
                                 reason=f"the account waits {wait:.1f} s more")  # fmt: skip
        content = cmd.content
        if isinstance(content, OutMedia) and content.source.upload_id:
            source = None
            if self.objects is not None:
                source = await inline_upload(self.objects, workspace, content.source)
            if source is None:
                return DeliverResult(status="refused", error_code="unknown_upload",
                                     reason=f"no upload {content.source.upload_id!r} "
                                     "in this workspace's object store")  # fmt: skip
            cmd = cmd.model_copy(update={"content": content.model_copy(update={"source": source})})
        plan = outgoing(cmd)
        if isinstance(plan, DeliverResult):
            return plan
        interval = self.interval_s if cmd.min_interval_s is None else cmd.min_interval_s
        wait = self.last_call + interval - time.monotonic()
        if wait > 0:
            await self.sleep(wait)
        await self.state.send_attempt(workspace, cmd.message_id, self.session_id)
        self.last_call = time.monotonic()
        try:
            peer = await self.resolve(client, cmd.peer)
            sent = await self._call(client, peer, plan, cmd.reply_to)
        except FloodWaitError as exc:
            return await self._flood(exc)
        except (DisconnectedError, *_UNUSABLE):
            raise
        except MtprotoError as exc:
            result = classify(exc)
            if exc.reason in RESTRICTED and self.on_restricted is not None:
                await self.on_restricted(self.now() + RESTRICTED_HOLD)
            if result.status == "refused":
                await self.state.send_done(workspace, cmd.message_id, "failed", None, exc.reason)
                SENDS.labels("failed").inc()
            return result
        await self.state.send_done(workspace, cmd.message_id, "sent", str(sent.id), None)
        chat = chat_of(peer)
        await reads.note_sent(self.state.pool, workspace, cmd.message_id, chat.id)
        SENDS.labels("sent").inc()
        if self.on_sent is not None:
            await self.on_sent(peer, sent.id)
        return DeliverResult(
            status="sent",
            provider_message_id=str(sent.id),
            chat_id=chat.id,
            chat_type=chat.type.value,
            chat_title=chat.title,
        )

    async def _chat(self, client: MtprotoClient, ref: str) -> Chat | None:
        """The chat a repeated send went to, named again for its answer (what kind, which
        title: a channel's post opens a channel's conversation), or None when Telegram
        does not say now; the send itself is done either way."""
        try:
            return chat_of(await self.resolve(client, ref))
        except (DisconnectedError, *_UNUSABLE):
            raise
        except MtprotoError:
            return None

    async def read(self, update: OutboxRead) -> None:
        """Our messages in a chat were read up to ``max_id``: a read receipt for each."""
        found = await reads.unread(
            self.state.pool, self.session_id, chat_id(update.peer), update.max_id
        )
        if not found:
            return
        now = self.now()
        for item in found:
            # A receipt names its recipient: sealed like every delivery event (pii.py).
            receipt = reads.receipt(self.session_id, item, now)
            await pii.publish_sealed(self.bus, receipt, workspace=item.workspace_id)
        await reads.mark_read(self.state.pool, found)

    async def _call(
        self, client: MtprotoClient, peer: Peer, plan: Outgoing, reply_to: int | None
    ) -> Message:
        if plan.media is not None:
            return await client.send_media(
                peer, plan.media, caption=plan.caption, reply_to=reply_to, spans=plan.spans
            )
        assert plan.text is not None
        return await client.send_message(peer, plan.text, reply_to=reply_to, spans=plan.spans)

    async def _flood(self, exc: FloodWaitError) -> DeliverResult:
        """Nothing was sent: the session's sends pause (here and, through the answer, in
        outbound for every instance) until Telegram's wait is over."""
        now = self.now()
        until = now + timedelta(seconds=exc.seconds)
        self.paused_until = until
        # Counted like every other flood wait (floods.FloodPolicy): the sends relayed for
        # outbound are where most of them happen.
        FLOOD_WAITS.labels("send_message").inc()
        FLOOD_WAIT_SECONDS.labels("send_message").inc(exc.seconds)
        await self.sessions.pause_sends(self.session_id, until)
        await self.emit(
            FloodWaited(
                session_id=self.session_id,
                at=now,
                operation="send_message",
                seconds=exc.seconds,
                action="deferred",
                resume_at=until,
            )
        )
        return DeliverResult(
            status="flood_wait",
            error_code=exc.reason,
            retry_after=float(exc.seconds),
            reason=f"Telegram asks to wait {exc.seconds} s",
        )
