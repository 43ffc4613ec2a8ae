"""The bus side of the gateway's commands (``cmd.mtproto.*`` except sends, which each
session's holder pulls from its own durable consumer).

Login steps run here and answer with login events; the other commands are recorded for the
session's holder, and a command that cannot be applied becomes ``mtproto.command_rejected``.
Login commands carry a code or a password, so once handled they are erased from the stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from nats.aio.msg import Msg

from switchboard.events import DecodeError, Message, decode_message
from switchboard.events.catalog.mtproto import (
    ChangeAsUser,
    DeliverAsUser,
    FetchMedia,
    ListDialogs,
    Logout,
    SearchContacts,
    SendAsUser,
    StartBackfill,
    StartLogin,
    SubmitLoginCode,
    SubmitLoginPassword,
    Subscribe,
    Unsubscribe,
)
from switchboard.events.envelope import Envelope
from switchboard.mtproto import actions, holder_serve, login, login_secrets, session_ids
from switchboard.mtproto.sessions import SessionStore
from switchboard.mtproto.state import StateStore
from switchboard.mtproto.ttl import Parking
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError
from switchboard.runtime.dlq import dead_letter_msg
from switchboard.runtime.logging import get_logger
from switchboard.runtime.ownership import Owned, visible
from switchboard.runtime.subscribers import Subscription, durable

log = get_logger(__name__)

WAKING = ("send", "list_dialogs", "search_contacts", "deliver", "change", "fetch_media")

# Where it reads is the topology's (switchboard.events.topology, MTPROTO): the session
# commands, and the WAKING ones, seen only to wake a parked session (ttl.py).
# A session's commands apply in the order they were published (``ordered``): a subscribe
# and an unsubscribe of one peer in one batch ran at once, and the peer stayed read.
SUBSCRIPTION = Subscription(
    durable("mtproto", "mtproto-commands"),
    max_failures=10,
    backoff_s=(1.0, 2.0, 5.0),
    batch=16,
    ordered=True,
)
SUBSCRIPTIONS = (SUBSCRIPTION,)
SPEC = SUBSCRIPTION.spec
# A step whose session is busy (another step in flight) is retried this many times first.
BUSY_RETRIES = 5


@dataclass
class CommandDeps:
    bus: Bus
    sessions: SessionStore
    state: StateStore
    login: login.LoginDeps
    parking: Parking | None = None  # session TTL (ttl.py)


async def handle(deps: CommandDeps, msg: Msg) -> bool:
    """Apply one command; returns True (the message is settled here)."""
    try:
        decoded = decode_message(msg.subject, dict(msg.headers or {}), msg.data)
    except DecodeError as exc:
        if msg.subject.startswith("cmd.mtproto.login_"):
            await _reject_secret(deps.bus, msg, exc.reason)
            return True
        parts = msg.subject.split(".")
        if len(parts) > 2 and parts[2] in WAKING:
            await msg.ack()  # the session's holder dead-letters it (once)
            return True
        raise PermanentError(exc.reason) from None
    cmd, envelope = decoded.model, decoded.envelope
    sid = named = getattr(cmd, "session_id", "")
    if sid and not isinstance(cmd, StartLogin | SubmitLoginCode | SubmitLoginPassword):
        # ids are per workspace (session_ids); login secrets are sealed for the id named
        sid = await session_ids.resolve(deps.sessions, envelope.workspace_id, sid)
        cmd = cmd.model_copy(update={"session_id": sid})
    foreign = await foreign_session(deps.sessions, cmd, envelope.workspace_id)
    if isinstance(
        cmd, SendAsUser | ListDialogs | SearchContacts | DeliverAsUser | ChangeAsUser | FetchMedia
    ):
        # The session's holder answers these from its own queues; here they only wake a
        # parked session (never another workspace's: it will refuse them when it connects).
        if foreign is None and deps.parking is not None:
            await deps.parking.wake(sid)
        await msg.ack()
        return True
    if foreign is not None:
        await actions.reject(deps.bus, envelope, cmd.name, named, foreign)
        await msg.ack()
        if isinstance(cmd, StartLogin | SubmitLoginCode | SubmitLoginPassword):
            await holder_serve.erase(deps.bus, msg)
        return True
    if isinstance(cmd, StartLogin | SubmitLoginCode | SubmitLoginPassword):
        await _login_command(deps, msg, cmd, envelope)
        return True
    if isinstance(cmd, Logout):
        result = await actions.logout(deps.sessions, sid)
    elif isinstance(cmd, Subscribe):
        result = await actions.subscribe(deps.sessions, deps.state, sid, cmd.peer, envelope.id)
    elif isinstance(cmd, Unsubscribe):
        result = await actions.unsubscribe(deps.state, sid, cmd.peer)
        if result.ok:
            await deps.bus.publish(actions.unsubscribed(sid, result), cause=envelope)
    elif isinstance(cmd, StartBackfill):
        result = await actions.backfill(
            deps.sessions,
            deps.state,
            session_id=sid,
            job_id=cmd.job_id or backfill_job_id(envelope.id),
            ref=cmd.peer,
            max_messages=cmd.max_messages,
            until=cmd.until,
        )
    else:
        raise PermanentError(f"{cmd.name} is not handled by the mtproto command consumer")
    if not result.ok:  # named as the caller named it, in the reason too
        reason = (result.reason or "").replace(sid, named) or None
        await actions.reject(deps.bus, envelope, cmd.name, named, replace(result, reason=reason))
    await msg.ack()
    return True


async def foreign_session(
    sessions: SessionStore, cmd: Message, workspace: str
) -> actions.Result | None:
    """A 404 when ``cmd`` names a session (or a login in progress) of another workspace, or
    asks for a login in another workspace than its own: another workspace's session does not
    exist for the command (tenancy, DESIGN law 8)."""
    sid = getattr(cmd, "session_id", None)
    if sid is None:
        return None
    if isinstance(cmd, StartLogin) and cmd.workspace_id not in (None, workspace):
        return actions.Result(404, reason=f"no workspace {cmd.workspace_id!r} for this command")
    found: Owned | None = await sessions.get_session(sid)
    if found is None and isinstance(cmd, StartLogin | SubmitLoginCode | SubmitLoginPassword):
        found = await sessions.get_login(sid)
    if found is not None and visible(found, workspace) is None:
        return actions.Result(404, reason=f"no session {sid!r}")
    return None


def backfill_job_id(command_id: str) -> str:
    """A job id from the command's id (job ids are [A-Za-z0-9_-], at most 64)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", command_id)[:64]


async def _login_command(
    deps: CommandDeps,
    msg: Msg,
    cmd: StartLogin | SubmitLoginCode | SubmitLoginPassword,
    envelope: Envelope,
) -> None:
    """Run a login step. Its command holds a code, a password or an app hash, so it never
    goes to the DLQ: the last delivery that fails becomes a login failure, and a handled
    command is erased from the stream."""
    deliveries = msg.metadata.num_delivered
    try:
        secrets = await _opened(deps, cmd, envelope.workspace_id)
    except login_secrets.RefusedError as exc:
        # Refused for good: said in a rejection event, and the command (which may hold a
        # secret in the clear) is erased at once, never dead-lettered with its body.
        refused = actions.Result(400, reason=exc.reason)
        await actions.reject(deps.bus, envelope, cmd.name, cmd.session_id, refused)
        await holder_serve.done(deps.bus, msg)
        return
    try:
        outcome = await _login_step(
            deps, cmd, secrets, envelope.workspace_id, deliveries <= BUSY_RETRIES
        )
    except Exception as exc:
        if deliveries < SPEC.max_deliver:
            raise
        log.exception("login step failed for good", session_id=cmd.session_id)
        await login.internal_failure(
            deps.login, cmd.session_id, login.step_of(cmd), exc, envelope.workspace_id
        )
    else:
        if outcome is None:  # busy: another delivery tries shortly
            await msg.nak(delay=1.0)
            return
    await holder_serve.done(deps.bus, msg)


async def _opened(
    deps: CommandDeps, cmd: login_secrets.LoginCommand, workspace_id: str
) -> login_secrets.StartSecrets | str:
    """The command's secrets, opened; refused when in the clear, when they do not open, or
    when the command acts for another workspace than the session's."""
    keyring = deps.sessions.keyring
    if isinstance(cmd, StartLogin):
        if cmd.workspace_id is not None and cmd.workspace_id != workspace_id:
            raise login_secrets.RefusedError("workspace_id differs from the envelope's")
        owner = await deps.sessions.owner(cmd.session_id)
        if owner is not None and owner != workspace_id:
            raise login_secrets.RefusedError(f"session id {cmd.session_id!r} is not available")
        return login_secrets.start_secrets(keyring, cmd)
    owner = await deps.sessions.owner(cmd.session_id)
    if owner is not None and owner != workspace_id:
        raise login_secrets.RefusedError(f"no session {cmd.session_id!r}")
    if isinstance(cmd, SubmitLoginCode):
        return login_secrets.code_of(keyring, cmd)
    return login_secrets.password_of(keyring, cmd)


async def _login_step(
    deps: CommandDeps,
    cmd: login_secrets.LoginCommand,
    secrets: login_secrets.StartSecrets | str,
    workspace_id: str,
    busy_retry: bool,
) -> login.Outcome | None:
    try:
        if isinstance(cmd, StartLogin):
            assert isinstance(secrets, login_secrets.StartSecrets)
            return await login.start(
                deps.login,
                login.StartRequest(
                    session_id=cmd.session_id,
                    workspace_id=workspace_id,
                    phone=cmd.phone,
                    api_id=cmd.api_id,
                    api_hash=secrets.api_hash,
                    device=cmd.device,
                    proxy=secrets.proxy,
                ),
            )
        assert isinstance(secrets, str)
        if isinstance(cmd, SubmitLoginCode):
            return await login.submit_code(deps.login, cmd.session_id, secrets)
        return await login.submit_password(deps.login, cmd.session_id, secrets)
    except login.SessionBusyError:
        if busy_retry:
            return None
        return await login.busy(deps.login, cmd.session_id, login.step_of(cmd), workspace_id)


async def _reject_secret(bus: Bus, msg: Msg, reason: str) -> None:
    """A login command that does not decode goes to the DLQ without its body (it may hold a
    code, a password or an app hash), and is erased from the stream."""
    await dead_letter_msg(
        bus,
        msg,
        reason=f"{reason} (body removed: it may hold a login secret)",
        consumer=SPEC.durable,
        body=b"",
    )
    await msg.term()
    await holder_serve.erase(bus, msg)
