"""The holder's side of ``runtime.holder_call``: pull a session's commands, decode each,
answer it on the inbox its sender named.

Outbound's sends (relay.py), the CRM's downloads (media_fetch.py), dialog queries
(dialogs.py) and the session's own send queue (runner.py) are pulled this way; what each
command does stays in its own module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, TypeVar

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import ServerError
from pydantic import BaseModel

from switchboard.events import DecodeError, Envelope, decode_message
from switchboard.events.base import Message
from switchboard.events.catalog.mtproto import ChangeAsUser, DeliverAsUser, FetchMedia
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import BatchPull
from switchboard.runtime.dlq import dead_letter_msg
from switchboard.runtime.holder_call import REPLY_HEADER
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)
STREAM = "MTPROTO"
C = TypeVar("C", bound=Message)
H = TypeVar("H", DeliverAsUser, ChangeAsUser, FetchMedia)  # the commands with a deadline
R = TypeVar("R", bound=BaseModel)  # their answers


def consumer(
    durable: str,
    ack_wait: float,
    deliver_policy: DeliverPolicy,
    *,
    subject: str | None = None,
    subjects: list[str] | None = None,
    inactive_threshold: float | None = None,
) -> ConsumerConfig:
    """A session's durable consumer of commands, pulled by its holder only: each command
    acked explicitly once dealt with, and redelivered without limit (a holder that loses
    the session leaves it to the next one)."""
    return ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,
        filter_subject=subject,
        filter_subjects=subjects,
        deliver_policy=deliver_policy,
        inactive_threshold=inactive_threshold,
    )


async def serve(
    bus: Bus,
    config: ConsumerConfig,
    batch: int,
    handle: Callable[[Msg], Awaitable[None]],
    before_fetch: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Pull the session's durable consumer and hand each command to ``handle`` until
    cancelled (or ``handle`` raises); ``before_fetch`` may hold the next pull back."""
    pull = await _started(bus, config)
    try:
        while True:
            if before_fetch is not None:
                await before_fetch()
            try:
                msgs = await pull.fetch(batch, timeout=1.0)
            except TimeoutError:
                continue
            for msg in msgs:
                await handle(msg)
    finally:
        # What arrived but was not answered goes back now, not after the ack wait.
        await pull.close(nak_buffered=True)


# The server's answer to a change of a consumer's deliver policy, which it cannot update.
_POLICY_NOT_UPDATABLE = 10012


async def _started(bus: Bus, config: ConsumerConfig) -> BatchPull:
    """The holder's pull of its session's consumer. One an older version made with another
    deliver policy (the deliveries' started at new messages) is made again: it is this
    holder's own, and what it had not acked is read again from the policy's start (a send
    past its deadline is dropped and erased; one already sent is answered from its record)."""
    try:
        return await BatchPull(bus, STREAM, config).start()
    except ServerError as exc:
        if exc.err_code != _POLICY_NOT_UPDATABLE or not config.durable_name:
            raise
    log.info(
        "session consumer made again with its new deliver policy", consumer=config.durable_name
    )
    await bus.js.delete_consumer(STREAM, config.durable_name)
    return await BatchPull(bus, STREAM, config).start()


async def done(bus: Bus, msg: Msg) -> None:
    """Ack a command that is dealt with, and erase it from the stream. ``MTPROTO`` keeps what
    it stores for 90 days, and a session's commands say what a person is sent and who they
    are (a send's peer and text, a download's chat, a contact search's words): none of it
    outlives its handling there (the erasure of a contact could not reach it)."""
    await msg.ack()
    await erase(bus, msg)


async def erase(bus: Bus, msg: Msg) -> None:
    """Remove a handled command from the stream (the server overwrites the stored message);
    one a redelivery already erased is fine, any other failure is logged: the stream's
    retention removes it in the end."""
    try:
        await bus.delete_msg(STREAM, msg.metadata.sequence.stream)
    except Exception as exc:
        log.warning("command not erased from the stream", error=str(exc))


async def decode_command(
    bus: Bus, msg: Msg, kind: type[C], consumer: str
) -> tuple[C, Envelope] | None:
    """The command in ``msg`` with its envelope; None when it is not a ``kind`` (then it is
    dead-lettered with the reason, terminated, and erased: no redelivery can fix it)."""
    try:
        decoded = decode_message(msg.subject, dict(msg.headers or {}), msg.data)
        cmd = decoded.model
        if not isinstance(cmd, kind):
            raise DecodeError(f"{type(cmd).__name__} is not {kind.name}")
    except DecodeError as exc:
        await dead_letter_msg(bus, msg, reason=exc.reason, consumer=consumer)
        await msg.term()
        await erase(bus, msg)
        return None
    return cmd, decoded.envelope


class Holder(Protocol):
    """What serves one session's commands: the bus, the session, and its workspace and
    clock as they are now."""

    @property
    def bus(self) -> Bus: ...
    @property
    def session_id(self) -> str: ...
    @property
    def workspace_id(self) -> Callable[[], str]: ...
    @property
    def now(self) -> Callable[[], datetime]: ...


async def admit(
    holder: Holder, msg: Msg, kind: type[H], consumer: str, answer_as: type[BaseModel]
) -> tuple[H, str, str | None] | None:
    """The command to serve, with its workspace and reply inbox; None when it is already
    dealt with: undecodable (dead-lettered), another workspace's (for which the session
    does not exist: answered ``unusable`` as an ``answer_as``), or read after its deadline
    (its sender stopped waiting: acked, unanswered)."""
    sid = holder.session_id
    command = await decode_command(holder.bus, msg, kind, consumer)
    if command is None:
        return None
    cmd, envelope = command
    reply = reply_inbox(msg)
    if envelope.workspace_id != holder.workspace_id():
        refused = answer_as(
            status="unusable", error_code="unknown_account", reason=f"no session {sid!r}"
        )
        await settle(holder, msg, reply, refused)
        return None
    if holder.now() > cmd.deadline:
        await done(holder.bus, msg)
        return None
    return cmd, envelope.workspace_id, reply


async def serve_command(
    holder: Holder,
    msg: Msg,
    kind: type[H],
    consumer: str,
    answer_as: type[R],
    work: Callable[[H, str], Awaitable[R]],
    fatal: tuple[type[Exception], ...],
    last_word: Callable[[Exception], R | None],
) -> None:
    """Serve one command: admitted (``admit``), worked (``work(command, workspace)``),
    answered, acked. An error in ``fatal`` ends the holder's serving (the connection is gone,
    the key is dead): the sender gets ``last_word`` and the command is acked, or, when that
    is None, the command goes back (nak) to the next holder; then the error is raised."""
    admitted = await admit(holder, msg, kind, consumer, answer_as)
    if admitted is None:
        return
    cmd, workspace, reply = admitted
    try:
        result = await work(cmd, workspace)
    except fatal as exc:
        final = last_word(exc)
        if final is None:
            await msg.nak()
        else:
            await settle(holder, msg, reply, final)
        raise
    await settle(holder, msg, reply, result)


async def settle(holder: Holder, msg: Msg, reply: str | None, result: BaseModel) -> None:
    """Answer the command's sender, then ack the command: it is dealt with."""
    await answer(holder.bus, reply, result, holder.session_id)
    await done(holder.bus, msg)


def reply_inbox(msg: Msg) -> str | None:
    """The inbox the command's sender waits on (None: it named none)."""
    return (msg.headers or {}).get(REPLY_HEADER)


async def answer(bus: Bus, reply: str | None, result: BaseModel, session_id: str) -> None:
    """Publish ``result`` on the sender's inbox (a command without one is logged)."""
    if reply is None:
        log.warning("command without a reply inbox", session_id=session_id)
        return
    await bus.nc.publish(reply, result.model_dump_json(exclude_none=True).encode())
