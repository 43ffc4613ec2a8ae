"""Sends through a Telegram user account (channel ``mtproto``): over the bus to the MTProto
gateway, which holds the session's connection.

One attempt = one ``mtproto.deliver`` command on the session's subject, answered by the
session's holder on a NATS inbox with a ``DeliverResult``. The gateway calls Telegram at
most once per message id (it keeps what it sent), so a repeat after a lost answer is
answered from its record instead of sending again. A command not answered within the call
timeout expires at the gateway unsent (its deadline), so a retry never races a stale copy.
The gateway answers a FLOOD_WAIT at once and sends nothing; here it becomes a rate limit of
the account, which the outbound core turns into a pause for every instance.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from switchboard.events.catalog.mtproto import ChangeAsUser, DeliverAsUser, DeliverResult
from switchboard.events.catalog.outbound import (
    DeleteMessage,
    EditMessage,
    OutMedia,
    OutText,
    SendMessage,
)
from switchboard.outbound.http import SEND_WINDOW, SlotMissedError
from switchboard.outbound.limits import account_key
from switchboard.outbound.providers.base import Failure, ProviderError, Sent
from switchboard.outbound.providers.telegram import Interaction, Target
from switchboard.runtime.accounts import Account
from switchboard.runtime.bus import Bus
from switchboard.runtime.button_limits import NO_KEYBOARDS
from switchboard.runtime.holder_call import ask_holder
from switchboard.runtime.markup import FORMAT_OF, spans

# The account cannot send at all for now (revoked, banned, restricted for spam).
UNUSABLE = "account_unusable"


def session_status(account: Account, now: datetime | None = None) -> str:
    """What the gateway last said of the session: ``active``, ``revoked``, or ``restricted``
    (Telegram restricted it for spam, until ``settings["restricted_until"]``)."""
    status = str(account.settings.get("status") or "active")
    if status == "active" and restricted_until(account) > (now or datetime.now(UTC)):
        return "restricted"
    return status


def restricted_until(account: Account) -> datetime:
    raw = account.settings.get("restricted_until")
    try:
        return datetime.fromisoformat(str(raw)) if raw else datetime.min.replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


# What a Telegram user account sends (bots have keyboards, stickers by file id, albums).
USER_KINDS = ("text", "location", "photo", "video", "audio", "voice", "document", "animation")


def unsupported(command: SendMessage) -> tuple[str, str] | None:
    """(field, reason) when a user account cannot send ``command`` as it is, else None: the
    API answers 422 naming the field, before anything is queued."""
    content = command.content
    if content.kind not in USER_KINDS:
        return "content.kind", f"a Telegram user account cannot send {content.kind} content"
    if isinstance(content, OutMedia) and content.source.file_id:
        return "content.source.file_id", "file ids are a bot's; send user media by url or data"
    if command.keyboard is not None:
        return "keyboard", NO_KEYBOARDS
    if isinstance(content, OutMedia | OutText) and content.parse_mode is not None:
        # The gateway sends the parse mode's entities; legacy Markdown is a bot's alone.
        if content.parse_mode not in FORMAT_OF:
            return "content.parse_mode", (
                "a user account's send reads HTML or MarkdownV2 "
                f"(sent as Telegram's entities), not {content.parse_mode}"
            )
        # a text of markup alone is an empty message (a caption may be empty)
        mode = FORMAT_OF[content.parse_mode]
        if isinstance(content, OutText) and not spans(content.text, mode)[0].strip():
            return "content.text", f"shows no text once read as {content.parse_mode}"
    if command.reply_to is not None and not command.reply_to.isdigit():
        return "reply_to", "a Telegram message id (digits)"
    return None


def deliver_command(
    command: SendMessage, session_id: str, deadline: datetime, interval: float | None = None
) -> DeliverAsUser:
    """The gateway command for one attempt of ``command`` (what a user account cannot send
    is refused before any call)."""
    problem = unsupported(command)
    if problem is not None:
        raise ProviderError(Failure.PERMANENT, "unsupported_content", ": ".join(problem))
    reply_to = int(command.reply_to) if command.reply_to is not None else None
    return DeliverAsUser(
        session_id=session_id,
        message_id=command.message_id,
        peer=command.recipient,
        content=command.content,
        reply_to=reply_to,
        deadline=deadline,
        min_interval_s=interval,
    )


def unchangeable(command: Interaction) -> tuple[str, str] | None:
    """(field, reason) when a user account cannot make ``command`` as it is, else None:
    it edits and deletes its own messages, and has no buttons or bot calls."""
    if not isinstance(command, EditMessage | DeleteMessage):
        return "channel", f"{command.name} is a bot's call: a user account has none"
    if command.provider_message_id is not None and not command.provider_message_id.isdigit():
        return "provider_message_id", "a Telegram message id (digits)"
    if isinstance(command, EditMessage):
        if command.keyboard is not None:
            return "keyboard", NO_KEYBOARDS
        if command.parse_mode is not None and command.parse_mode not in FORMAT_OF:
            return (
                "parse_mode",
                f"a user account reads HTML or MarkdownV2, not {command.parse_mode}",
            )
    return None


def change_command(
    command: EditMessage | DeleteMessage, target: Target, session_id: str, deadline: datetime
) -> ChangeAsUser:
    """The gateway command of an edit or deletion of the message ``target``."""
    edit = command if isinstance(command, EditMessage) else None
    return ChangeAsUser(
        session_id=session_id,
        request_id=command.request_id,
        peer=target.recipient,
        provider_message_id=int(target.provider_message_id),
        action="delete" if edit is None else "edit",
        text=None if edit is None else edit.text,
        caption=None if edit is None else edit.caption,
        parse_mode=None if edit is None else edit.parse_mode,
        deadline=deadline,
    )


def outcome(result: DeliverResult) -> Sent:
    """The gateway's answer as the core's result: ``Sent``, or a classified error."""
    code = result.error_code or result.status
    reason = result.reason or code
    if result.status == "sent":
        if not result.provider_message_id:
            raise ProviderError(Failure.RETRYABLE, "bad_answer", "sent without a message id")
        raw = {"chat_id": result.chat_id, "chat_type": result.chat_type,
               "chat_title": result.chat_title} if result.chat_id else {}  # fmt: skip
        return Sent(result.provider_message_id, raw)
    if result.status == "flood_wait":
        raise ProviderError(Failure.RATE_LIMITED, code, reason, retry_after=result.retry_after)
    if result.status == "unusable":
        # The gateway's answer: nothing was sent (a campaign may move the send).
        raise ProviderError(
            Failure.PERMANENT, UNUSABLE, f"{code}: {reason}", raw={"answered": True}
        )
    if result.status == "refused":
        raise ProviderError(Failure.PERMANENT, code, reason)
    raise ProviderError(Failure.RETRYABLE, code, reason)


class GatewayClient:
    """The ``mtproto`` channel's client: asks the gateway to send, waits for its answer."""

    channel = "mtproto"

    def __init__(
        self, bus: Bus, timeout: float, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.bus = bus
        self.timeout = timeout
        # The deadline is judged by the holder, another process: on the clock both are
        # given (the server's, in the services).
        self.now = now

    async def send(self, account: Account, command: SendMessage) -> Sent:
        status = session_status(account)
        if status != "active":
            raise ProviderError(Failure.PERMANENT, UNUSABLE, f"session {account.id} is {status}")
        deadline = self.now() + timedelta(seconds=self.timeout)
        # The gateway paces the session at the account's own limit too.
        cmd = deliver_command(command, account.id, deadline, account_key(account).limit.interval)
        window = SEND_WINDOW.get()
        if window is not None:
            now = window.clock()
            if now > window.deadline:
                raise SlotMissedError(f"{(now - window.slot) * 1000:.0f} ms after its slot")
            window.left_at = now
        return await self._ask(account, cmd)

    async def interact(self, account: Account, command: Interaction, target: Target | None) -> Any:
        """Edit or delete a message the session sent (``target``), through its holder."""
        status = session_status(account)
        if status != "active":
            raise ProviderError(Failure.PERMANENT, UNUSABLE, f"session {account.id} is {status}")
        if (problem := unchangeable(command)) is not None:
            raise ProviderError(Failure.PERMANENT, "unsupported_content", ": ".join(problem))
        assert isinstance(command, EditMessage | DeleteMessage)
        assert target is not None
        deadline = self.now() + timedelta(seconds=self.timeout)
        return await self._ask(account, change_command(command, target, account.id, deadline))

    async def _ask(self, account: Account, cmd: DeliverAsUser | ChangeAsUser) -> Sent:
        """The holder's answer to ``cmd`` as the core's result (or a classified error)."""
        try:
            answer = await ask_holder(self.bus, cmd, account.workspace_id, self.timeout)
        except TimeoutError as exc:
            raise ProviderError(
                Failure.RETRYABLE,
                "gateway_timeout",
                f"no answer from the holder of session {account.id} in {self.timeout} s",
            ) from exc
        try:
            result = DeliverResult.model_validate_json(answer)
        except ValidationError as exc:
            raise ProviderError(Failure.RETRYABLE, "bad_answer", str(exc)[:200]) from exc
        return outcome(result)
