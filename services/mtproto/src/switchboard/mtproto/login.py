"""The login state machine: start (phone -> code sent), submit the code, submit the password.

Plain functions over their ports, shared by the bus handler and the HTTP API. Each step may
run on a different instance: what the next step needs (the temporary session whose auth key
asked for the code, the ``phone_code_hash``) is stored sealed in ``logins``. A step connects
the temporary session only while holding the session's lease (two steps at once would use
one auth key twice). Every outcome, failures included, is an event with a clear reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from switchboard.events import Event
from switchboard.events.catalog.mtproto import (
    DeviceInfo,
    LoginCodeSent,
    LoginFailed,
    LoginFailure,
    LoginPasswordNeeded,
    LoginStep,
    LoginSucceeded,
    ProxyInfo,
)
from switchboard.events.envelope import DEFAULT_WORKSPACE
from switchboard.mtproto.errors import MtprotoServiceError
from switchboard.mtproto.leases import Lease, LeaseLostError, closed_when_lost, while_held
from switchboard.mtproto.metrics import LOGINS
from switchboard.mtproto.ports import (
    DisconnectedError,
    FloodWaitError,
    MtprotoAdapter,
    MtprotoClient,
    MtprotoError,
    PasswordInvalidError,
    PasswordNeededError,
    PhoneCodeExpiredError,
    PhoneCodeInvalidError,
    PhoneNumberBannedError,
    PhoneNumberInvalidError,
    PhoneNumberUnoccupiedError,
    SessionConfig,
    User,
    UserDeactivatedError,
)
from switchboard.mtproto.proxies import health_check, label
from switchboard.mtproto.sessions import LoginRecord, Secrets, SessionRecord, SessionStore
from switchboard.mtproto.signin_caps import SignInAttempts

T = TypeVar("T")

# Holds the session's lease for the duration of a step (None: another instance has it).
Hold = Callable[[str], AbstractAsyncContextManager[Lease | None]]
# Publishes an event in a workspace.
Emit = Callable[[Event, str], Awaitable[None]]


@dataclass(frozen=True)
class LoginDeps:
    adapter: MtprotoAdapter
    store: SessionStore
    emit: Emit
    hold: Hold
    api_id: int | None = None
    api_hash: str | None = None
    code_ttl_s: float = 600.0
    attempts: SignInAttempts | None = None  # the local cap on sign-in attempts (None: none)
    # A login's expiry and its sign-in attempts are written by the instance that took one
    # step and judged by the one taking the next: the server's clock (``Runtime.clock``).
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Outcome:
    """What a step led to: ``code_sent``, ``password_needed``, ``authorized`` or ``failed``;
    ``status`` is the HTTP status the API answers."""

    state: str
    status: int
    event: Event

    def body(self) -> dict[str, object]:
        data = self.event.model_dump(mode="json", exclude_none=True)
        data["state"] = self.state
        return data


@dataclass(frozen=True)
class StartRequest:
    session_id: str
    workspace_id: str
    phone: str
    api_id: int | None = None
    api_hash: str | None = None
    device: DeviceInfo | None = None
    proxy: ProxyInfo | None = None


# How long the check of a proxy a login could not connect through may take.
PROXY_CHECK_TIMEOUT_S = 5.0

# Telegram's answer -> (reason, HTTP status, the whole login must start again)
_FAILURES: list[tuple[type[MtprotoError], LoginFailure, int, bool]] = [
    (PhoneNumberInvalidError, LoginFailure.PHONE_NUMBER_INVALID, 400, True),
    (PhoneNumberBannedError, LoginFailure.PHONE_NUMBER_BANNED, 403, True),
    (UserDeactivatedError, LoginFailure.PHONE_NUMBER_BANNED, 403, True),
    (PhoneCodeInvalidError, LoginFailure.PHONE_CODE_INVALID, 400, False),
    (PhoneCodeExpiredError, LoginFailure.PHONE_CODE_EXPIRED, 410, True),
    (PasswordInvalidError, LoginFailure.PASSWORD_INVALID, 400, False),
    (DisconnectedError, LoginFailure.NETWORK, 503, False),
]


async def _proxy_unreachable(record: LoginRecord, exc: MtprotoError) -> str | None:
    """Why the proxy the request named cannot be reached, when a connect through it failed:
    the caller's input is wrong (a 422 naming the field), not Telegram down (503)."""
    config = record.config()
    if not isinstance(exc, DisconnectedError) or config.proxy is None:
        return None
    error = await health_check(None, PROXY_CHECK_TIMEOUT_S)(config.proxy, config)
    if error is None:
        return None
    return f"{label(config.proxy)} could not be reached ({error})"


def mask_phone(phone: str) -> str:
    digits = phone.lstrip("+")
    if len(digits) <= 4:
        return "+" + "*" * len(digits)
    return "+" + digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


async def _fail(
    deps: LoginDeps,
    session_id: str,
    step: LoginStep,
    reason: LoginFailure,
    status: int,
    message: str,
    *,
    error_code: str | None = None,
    retry_after_s: int | None = None,
    restart: bool = False,
    workspace_id: str = DEFAULT_WORKSPACE,
) -> Outcome:
    if restart and step is not LoginStep.START:
        await deps.store.delete_login(session_id)
    event = LoginFailed(
        session_id=session_id,
        at=deps.now(),
        step=step,
        reason=reason,
        message=message,
        error_code=error_code,
        retry_after_s=retry_after_s,
        restart_required=restart,
    )
    await deps.emit(event, workspace_id)
    LOGINS.labels(step.value, reason.value).inc()
    return Outcome("failed", status, event)


async def _capped(
    deps: LoginDeps, session_id: str, step: LoginStep, workspace_id: str, phone: str
) -> Outcome | None:
    """The failure when the local sign-in cap refuses one more attempt (None: go ahead; the
    attempt is counted). Answered like Telegram's own flood wait, with the cap's name."""
    if deps.attempts is None:
        return None
    verdict = await deps.attempts.admit(workspace_id, phone, deps.now())
    if verdict.allowed:
        return None
    wait = verdict.retry_after_s
    message = f"too many sign-in attempts for this {verdict.scope}; try again in {wait} s"
    return await _flood_wait(
        deps, session_id, step, workspace_id, wait, verdict.error_code, message
    )


async def _flood_wait(
    deps: LoginDeps,
    session_id: str,
    step: LoginStep,
    workspace_id: str,
    seconds: int,
    error_code: str | None,
    message: str,
) -> Outcome:
    """A step refused until ``seconds`` have passed (429 with Retry-After): Telegram's own
    flood wait, or the local sign-in cap answering like it."""
    return await _fail(
        deps,
        session_id,
        step,
        LoginFailure.FLOOD_WAIT,
        429,
        message,
        error_code=error_code,
        retry_after_s=seconds,
        workspace_id=workspace_id,
    )


async def _telegram_failure(
    deps: LoginDeps, session_id: str, step: LoginStep, exc: MtprotoError, workspace_id: str
) -> Outcome:
    """The event for an error Telegram answered to a step."""
    if isinstance(exc, FloodWaitError):
        message = f"Telegram asks to wait {exc.seconds} s before trying again"
        return await _flood_wait(
            deps, session_id, step, workspace_id, exc.seconds, exc.reason, message
        )
    for cls, reason, status, restart in _FAILURES:
        if isinstance(exc, cls):
            return await _fail(
                deps,
                session_id,
                step,
                reason,
                status,
                _MESSAGES[reason],
                error_code=exc.reason,
                restart=restart,
                workspace_id=workspace_id,
            )
    if isinstance(exc, PhoneNumberUnoccupiedError):
        return await _fail(
            deps,
            session_id,
            step,
            LoginFailure.PHONE_NUMBER_UNOCCUPIED,
            400,
            "no Telegram account uses this number; sign up in a Telegram app first",
            error_code=exc.reason,
            restart=True,
            workspace_id=workspace_id,
        )
    return await _fail(
        deps,
        session_id,
        step,
        LoginFailure.TELEGRAM_ERROR,
        502,
        f"Telegram answered {exc.reason}",
        error_code=exc.reason,
        workspace_id=workspace_id,
    )


_MESSAGES = {
    LoginFailure.PHONE_NUMBER_INVALID: "the phone number is not valid for Telegram",
    LoginFailure.PHONE_NUMBER_BANNED: "the phone number is banned by Telegram",
    LoginFailure.PHONE_CODE_INVALID: "the code is wrong; submit the code again",
    LoginFailure.PHONE_CODE_EXPIRED: "the code expired; start the login again",
    LoginFailure.PASSWORD_INVALID: "the password is wrong; submit the password again",
    LoginFailure.NETWORK: "Telegram could not be reached; try the step again",
}


@asynccontextmanager
async def _connected(
    adapter: MtprotoAdapter, config: SessionConfig
) -> AsyncIterator[MtprotoClient]:
    client = adapter.client(config)
    try:
        await client.connect()
        yield client
    finally:
        await client.disconnect()


async def _on_telegram(
    deps: LoginDeps,
    step: LoginStep,
    login: LoginRecord,
    call: Callable[[MtprotoClient], Awaitable[T]],
    *,
    refused: Callable[[MtprotoError], Awaitable[Outcome]] | None = None,
    settle: Callable[[T, str], Awaitable[Outcome | None]] | None = None,
) -> tuple[T, str] | Outcome:
    """Make a step's call to Telegram on the login's temporary session: counted against the
    local sign-in cap, connected only under the session's lease (SessionBusyError while
    another step or instance holds it). Gives the call's result and the session as it is
    after the call, or the failure: the cap's, or ``refused`` (default: the Telegram
    failure) for what Telegram answered. ``settle`` runs still under the lease, and its
    outcome (if any) is the step's."""
    sid, workspace_id = login.session_id, login.workspace_id
    capped = await _capped(deps, sid, step, workspace_id, login.phone)
    if capped is not None:
        return capped

    async def connected(lease: Lease) -> tuple[T, str]:
        async with (
            _connected(deps.adapter, login.config()) as client,
            closed_when_lost(lease, client.disconnect),
        ):
            lease.require("connecting")  # lost as the connect completed: its cancel may be gone
            return await call(client), client.export_session()

    async with deps.hold(sid) as lease:
        if lease is None:
            raise SessionBusyError(sid)
        try:
            result = await while_held(lease, connected(lease))
        except MtprotoError as exc:
            if refused is not None:
                return await refused(exc)
            return await _telegram_failure(deps, sid, step, exc, workspace_id)
        except LeaseLostError:
            raise SessionBusyError(sid) from None
        if settle is not None and (settled := await settle(*result)) is not None:
            return settled
    return result


class SessionBusyError(MtprotoServiceError):
    """Another instance (or step) holds the session's lease right now."""


def step_of(cmd: object) -> LoginStep:
    """The login step a command performs."""
    name = getattr(cmd, "name", "")
    if name.endswith("submit_code"):
        return LoginStep.CODE
    if name.endswith("submit_password"):
        return LoginStep.PASSWORD
    return LoginStep.START


async def busy(
    deps: LoginDeps, session_id: str, step: LoginStep, workspace_id: str = DEFAULT_WORKSPACE
) -> Outcome:
    """The failure answered when the session stayed busy."""
    return await _fail(
        deps,
        session_id,
        step,
        LoginFailure.SESSION_BUSY,
        409,
        "another login step for this session is running; try again shortly",
        workspace_id=workspace_id,
    )


async def internal_failure(
    deps: LoginDeps,
    session_id: str,
    step: LoginStep,
    exc: Exception,
    workspace_id: str = DEFAULT_WORKSPACE,
) -> Outcome:
    """A step that kept failing inside the gateway (database, bus) gives up with an event."""
    return await _fail(
        deps,
        session_id,
        step,
        LoginFailure.INTERNAL_ERROR,
        500,
        f"the gateway could not complete the step ({type(exc).__name__}); try again",
        workspace_id=workspace_id,
    )


async def start(deps: LoginDeps, req: StartRequest) -> Outcome:
    """Ask Telegram to send a login code to ``req.phone``."""
    sid, step = req.session_id, LoginStep.START
    existing = await deps.store.get_session(sid)
    if existing is not None and existing.status != "revoked":
        return await _fail(
            deps,
            sid,
            step,
            LoginFailure.ALREADY_AUTHORIZED,
            409,
            f"session {sid!r} is logged in; log it out first",
            workspace_id=req.workspace_id,
        )
    api_id = req.api_id or deps.api_id
    api_hash = req.api_hash or deps.api_hash
    if not api_id or not api_hash:
        return await _fail(
            deps,
            sid,
            step,
            LoginFailure.INVALID_REQUEST,
            400,
            "api_id and api_hash are needed (in the request, or the gateway's defaults)",
            workspace_id=req.workspace_id,
        )
    device = req.device or DeviceInfo()
    phone = "+" + req.phone.lstrip("+")
    previous = await deps.store.get_login(sid)
    # Keep the auth key of an earlier attempt: Telegram ties codes to the key that asked.
    temp = previous.secrets.session if previous and previous.phone == phone else ""
    secrets = Secrets(
        session=temp,
        api_hash=api_hash,
        proxy_password=req.proxy.password if req.proxy else None,
        proxy_secret=req.proxy.secret if req.proxy else None,
    )
    record = LoginRecord(
        session_id=sid,
        workspace_id=req.workspace_id,
        phone=phone,
        step="code",
        api_id=api_id,
        device=device,
        proxy=req.proxy,
        secrets=secrets,
        code_type=None,
        expires_at=deps.now(),
    )

    async def send(client: MtprotoClient) -> tuple[str, str]:
        sent = await client.send_code(phone)
        return sent.phone_code_hash, sent.type

    async def refused(exc: MtprotoError) -> Outcome:
        unreachable = await _proxy_unreachable(record, exc)
        if unreachable is None:
            return await _telegram_failure(deps, sid, step, exc, req.workspace_id)
        return await _fail(
            deps,
            sid,
            step,
            LoginFailure.INVALID_REQUEST,
            422,
            f"proxy: {unreachable}; check proxy.host and proxy.port",
            error_code="PROXY_UNREACHABLE",
            workspace_id=req.workspace_id,
        )

    done = await _on_telegram(deps, step, record, send, refused=refused)
    if isinstance(done, Outcome):
        return done
    (code_hash, code_type), temp = done
    now = deps.now()
    expires = now + timedelta(seconds=deps.code_ttl_s)
    await deps.store.put_login(
        replace(
            record,
            secrets=replace(secrets, session=temp, phone_code_hash=code_hash),
            code_type=code_type,
            expires_at=expires,
        )
    )
    event = LoginCodeSent(
        session_id=sid,
        at=now,
        phone_hint=mask_phone(phone),
        code_type=code_type,
        expires_at=expires,
    )
    await deps.emit(event, req.workspace_id)
    LOGINS.labels(step.value, "code_sent").inc()
    return Outcome("code_sent", 200, event)


def _no_login_message(sid: str) -> str:
    return f"no login in progress for session {sid!r}; start one"


def no_login_in_progress(sid: str, step: LoginStep) -> Outcome:
    """The answer to a step naming no login, with no side effect: what the API answers for
    another workspace's session or login, exactly as for an id that exists nowhere (its
    login is neither deleted nor reported in an event)."""
    event = LoginFailed(
        session_id=sid,
        at=datetime.now(UTC),
        step=step,
        reason=LoginFailure.NO_LOGIN_IN_PROGRESS,
        message=_no_login_message(sid),
        restart_required=True,
    )
    return Outcome("failed", 404, event)


async def _pending(deps: LoginDeps, sid: str, step: LoginStep) -> LoginRecord | Outcome:
    """The login waiting for ``step``, or the failure saying why there is none."""
    login = await deps.store.get_login(sid)
    if login is None:
        return await _fail(
            deps,
            sid,
            step,
            LoginFailure.NO_LOGIN_IN_PROGRESS,
            404,
            _no_login_message(sid),
            restart=True,
        )
    if login.step != step.value:
        return await _fail(
            deps,
            sid,
            step,
            LoginFailure.WRONG_STEP,
            409,
            f"the login of {sid!r} waits for its {login.step}, not a {step.value}",
            workspace_id=login.workspace_id,
        )
    if login.expires_at <= deps.now():
        return await _fail(
            deps,
            sid,
            step,
            LoginFailure.PHONE_CODE_EXPIRED,
            410,
            "the login expired; start it again",
            restart=True,
            workspace_id=login.workspace_id,
        )
    return login


async def submit_code(deps: LoginDeps, session_id: str, code: str) -> Outcome:
    """Sign in with the code; two-step verification asks for the password next."""
    step = LoginStep.CODE
    login = await _pending(deps, session_id, step)
    if isinstance(login, Outcome):
        return login
    code_hash = login.secrets.phone_code_hash or ""

    async def sign_in(client: MtprotoClient) -> User | None:
        try:
            return await client.sign_in_code(login.phone, code, code_hash)
        except PasswordNeededError:
            return None

    async def authorized(user: User | None, session: str) -> Outcome | None:
        return None if user is None else await _authorized(deps, login, user, session)

    done = await _on_telegram(deps, step, login, sign_in, settle=authorized)
    if isinstance(done, Outcome):
        return done
    _, session = done
    await deps.store.put_login(
        replace(login, step="password", secrets=replace(login.secrets, session=session))
    )
    event = LoginPasswordNeeded(session_id=session_id, at=deps.now())
    await deps.emit(event, login.workspace_id)
    LOGINS.labels(step.value, "password_needed").inc()
    return Outcome("password_needed", 200, event)


async def submit_password(deps: LoginDeps, session_id: str, password: str) -> Outcome:
    """Finish a login with the account's two-step verification password."""
    step = LoginStep.PASSWORD
    login = await _pending(deps, session_id, step)
    if isinstance(login, Outcome):
        return login

    async def check(client: MtprotoClient) -> User:
        return await client.sign_in_password(password)

    async def authorized(user: User, session: str) -> Outcome:
        return await _authorized(deps, login, user, session)

    done = await _on_telegram(deps, step, login, check, settle=authorized)
    assert isinstance(done, Outcome)  # a signed-in password step always settles
    return done


async def _authorized(deps: LoginDeps, login: LoginRecord, user: User, session: str) -> Outcome:
    """Store the authorized session (sealed) and drop the login; still under the lease, so
    no instance connects it before it is complete."""
    record = SessionRecord(
        session_id=login.session_id,
        workspace_id=login.workspace_id,
        status="active",
        api_id=login.api_id,
        device=login.device,
        proxy=login.proxy,
        secrets=replace(login.secrets, session=session, phone_code_hash=None),
        phone=login.phone,
        user_id=user.id,
        username=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
    )
    await deps.store.finish_login(record)
    event = LoginSucceeded(
        session_id=login.session_id,
        at=deps.now(),
        user_id=str(user.id),
        username=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
    )
    await deps.emit(event, login.workspace_id)
    LOGINS.labels("login", "succeeded").inc()
    return Outcome("authorized", 200, event)
