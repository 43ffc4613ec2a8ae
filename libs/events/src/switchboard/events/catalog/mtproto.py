"""MTProto gateway events and commands: session lifecycle, login steps, subscriptions,
backfill progress and sends as a user (stream ``MTPROTO``). Messages read by sessions are
``conv.*`` events with channel ``mtproto`` and account = session id; the outcome of a send
as a user is a ``delivery.*`` event (channel ``mtproto``), like any other outbound message.

Every subject ends with the session id: ``mtproto.<event>.v1.<session>`` and
``cmd.mtproto.<command>.v1.<session>``, so one session's history is one subject filter.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from switchboard.events.base import Command, Event
from switchboard.events.catalog.common import Chat, Value
from switchboard.events.catalog.outbound import OutContent
from switchboard.events.registry import register, upcaster

SESSION_ID = r"^[A-Za-z0-9_-]+$"


SessionId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=SESSION_ID,
        description="the gateway's name of the user session (letters, digits, _ and -)",
    ),
]


class DeviceInfo(Value):
    """What Telegram shows in the account's list of active sessions."""

    device_model: str = Field("Switchboard", min_length=1)
    system_version: str = Field("Linux", min_length=1)
    app_version: str = Field("1.0", min_length=1)
    lang_code: str = Field("en", min_length=2)
    system_lang_code: str = Field("en", min_length=2)


class ProxyInfo(Value):
    """A SOCKS5 proxy or an MTProxy (``secret`` set) the session connects through. The
    password and the secret are stored encrypted with the session."""

    type: Literal["socks5", "mtproxy"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    username: str | None = None
    password: str | None = Field(None, repr=False)
    secret: str | None = Field(None, repr=False, description="MTProxy secret (hex)")


# --------------------------------------------------------------------------- commands


class _SessionCommand(Command):
    about: ClassVar[str] = "session_id"

    session_id: SessionId


@register("mtproto.login_start", 1)
class StartLoginV1(_SessionCommand):
    """Start logging a Telegram account in as session ``session_id`` (superseded by v2, which
    seals the app hash and proxy credentials for the gateway)."""

    phone: str = Field(pattern=r"^\+?[0-9]{5,16}$", description="international format")
    api_id: int | None = Field(None, ge=1)
    api_hash: str | None = Field(None, min_length=8, repr=False)
    device: DeviceInfo | None = None
    proxy: ProxyInfo | None = None
    workspace_id: str | None = Field(None, description="default: the envelope's workspace")


@register("mtproto.login_submit_code", 1)
class SubmitLoginCodeV1(_SessionCommand):
    """The login code the account received, in the clear (superseded by v2, which seals it for
    the gateway; the gateway refuses a plaintext code)."""

    code: str = Field(pattern=r"^[0-9]{3,10}$", repr=False)


@register("mtproto.login_submit_password", 1)
class SubmitLoginPasswordV1(_SessionCommand):
    """The account's two-step verification password, in the clear (superseded by v2, which
    seals it for the gateway; the gateway refuses a plaintext password)."""

    password: str = Field(min_length=1, max_length=256, repr=False)


SEALED = (
    "sealed for the gateway: switchboard.runtime.sealing.seal(<the gateway's keyring>, "
    "<command name>, <session_id>, <field name without sealed_>, <value>)"
)


class _Plain(_SessionCommand):
    """A v2 login command: each secret is either sealed (``sealed_<field>``) or, only when
    upcast from v1, in the clear (the gateway refuses those)."""

    def _exactly_one(self, field: str) -> None:
        plain, sealed = getattr(self, field), getattr(self, f"sealed_{field}")
        if (plain is None) == (sealed is None):
            raise ValueError(f"needs exactly one of sealed_{field} and (from v1 only) {field}")


@register("mtproto.login_start", 2)
class StartLogin(_SessionCommand):
    """Start logging a Telegram account in as session ``session_id``: Telegram sends a login
    code to the account's apps (or by SMS). Answered by ``mtproto.login_code_sent`` or
    ``mtproto.login_failed``. ``api_id``/``api_hash`` default to the gateway's own. The app
    hash and the proxy's credentials travel sealed for the gateway, never in the clear."""

    phone: str = Field(pattern=r"^\+?[0-9]{5,16}$", description="international format")
    api_id: int | None = Field(None, ge=1, le=2**31 - 1)
    sealed_api_hash: str | None = Field(None, min_length=8, repr=False, description=SEALED)
    device: DeviceInfo | None = None
    sealed_proxy: str | None = Field(
        None, repr=False, description=f"the ProxyInfo as JSON, {SEALED}"
    )
    workspace_id: str | None = Field(None, description="default: the envelope's workspace")
    # From v1 only (upcast): in the clear, refused by the gateway.
    api_hash: str | None = Field(None, min_length=8, repr=False, description="v1 only")
    proxy: ProxyInfo | None = Field(None, description="v1 only")

    @model_validator(mode="after")
    def _one_hash(self) -> StartLogin:
        if self.api_hash is not None and self.sealed_api_hash is not None:
            raise ValueError("give sealed_api_hash (or, from v1 only, api_hash), not both")
        if self.proxy is not None and self.sealed_proxy is not None:
            raise ValueError("give sealed_proxy (or, from v1 only, proxy), not both")
        return self


@register("mtproto.login_submit_code", 2)
class SubmitLoginCode(_Plain):
    """The login code the account received, sealed for the gateway. Answered by
    ``mtproto.login_succeeded``, ``mtproto.login_password_needed`` (two-step verification)
    or ``mtproto.login_failed``. Erased from the stream once handled."""

    sealed_code: str | None = Field(None, min_length=8, repr=False, description=SEALED)
    code: str | None = Field(None, pattern=r"^[0-9]{3,10}$", repr=False, description="v1 only")

    @model_validator(mode="after")
    def _one_code(self) -> SubmitLoginCode:
        self._exactly_one("code")
        return self


@register("mtproto.login_submit_password", 2)
class SubmitLoginPassword(_Plain):
    """The account's two-step verification password, sealed for the gateway. Answered by
    ``mtproto.login_succeeded`` or ``mtproto.login_failed``. Erased from the stream once
    handled (or use the HTTP API, which never writes it to a stream)."""

    sealed_password: str | None = Field(None, min_length=8, repr=False, description=SEALED)
    password: str | None = Field(None, min_length=1, max_length=256, repr=False,
                                 description="v1 only")  # fmt: skip

    @model_validator(mode="after")
    def _one_password(self) -> SubmitLoginPassword:
        self._exactly_one("password")
        return self


# v1 -> v2: the fields keep their names; a v1 secret stays in the clear (v1 only), which
# the gateway refuses and erases without ever writing it to the DLQ.
def _same_fields(data: dict[str, Any]) -> dict[str, Any]:
    return dict(data)


for _name in ("mtproto.login_start", "mtproto.login_submit_code", "mtproto.login_submit_password"):
    upcaster(_name, 1)(_same_fields)


@register("mtproto.logout", 1)
class Logout(_SessionCommand):
    """Log the session out at Telegram (the authorization is revoked) and delete it with its
    subscriptions and jobs. Answered by ``mtproto.session_revoked`` (reason ``logout``)."""

    reason: str | None = None


@register("mtproto.subscribe", 1)
class Subscribe(_SessionCommand):
    """Read a channel, group or chat with this session: its new, edited and deleted messages
    become ``conv.*`` events from now on. Answered by ``mtproto.subscription_added``."""

    peer: str = Field(min_length=1, description="@username, t.me link or (marked) numeric id")


@register("mtproto.unsubscribe", 1)
class Unsubscribe(_SessionCommand):
    """Stop reading a peer. Answered by ``mtproto.subscription_removed``."""

    peer: str = Field(min_length=1, description="as subscribed, or the chat id of the events")


@register("mtproto.backfill", 1)
class StartBackfill(_SessionCommand):
    """Read a peer's history, newest first, as ``conv.message_received`` events (the same
    ids as live events, so nothing is doubled). Stops at the start of the history, at the
    first message older than ``until``, or after ``max_messages``."""

    peer: str = Field(min_length=1, description="@username, t.me link or (marked) numeric id")
    job_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=SESSION_ID, description="default: the ce-id"
    )
    max_messages: int | None = Field(None, ge=1)
    until: datetime | None = Field(None, description="stop at messages older than this")


@register("mtproto.send", 1)
class SendAsUser(_SessionCommand):
    """Send a text message as the session's user. ``message_id`` is the idempotency key; the
    outcome is ``delivery.sent`` / ``delivery.retrying`` / ``delivery.failed`` with channel
    ``mtproto`` and account = session id."""

    caller_keyed: ClassVar[bool] = True  # send ids are per workspace

    message_id: str = Field(min_length=1, max_length=200)
    peer: str = Field(min_length=1, description="@username, t.me link or (marked) numeric id")
    text: str = Field(min_length=1, max_length=4096)
    reply_to: int | None = Field(None, ge=1, description="message id in that chat to answer")

    def ce_subject(self) -> str:
        return self.message_id

    def deterministic_id(self) -> str:
        return f"mtsend:{self.message_id}"


@register("mtproto.deliver", 1)
class DeliverAsUser(_SessionCommand):
    """Outbound's send of a ``SendMessage`` with channel ``mtproto`` through this session
    (callers address outbound, never this command). Only the session's holder consumes it,
    calls Telegram at most once per ``message_id`` of the workspace, and answers on the NATS
    inbox in the ``reply-to`` header with a :class:`DeliverResult`; outbound announces the
    ``delivery.*`` outcome. A command read after ``deadline`` is dropped unsent: its sender
    has stopped waiting and sends again if it still wants to."""

    caller_keyed: ClassVar[bool] = True  # send ids are per workspace

    message_id: str = Field(min_length=1, max_length=200)
    peer: str = Field(min_length=1, description="@username, t.me link or (marked) numeric id")
    content: OutContent
    reply_to: int | None = Field(None, ge=1, description="message id in that chat to answer")
    deadline: datetime = Field(description="not sent when read after this (with a timezone)")
    min_interval_s: float | None = Field(
        None,
        ge=0,
        description="the account's pace: at least this between two of the session's sends "
        "(default: the gateway's send_interval_s)",
    )

    def ce_subject(self) -> str:
        return self.message_id


class DeliverResult(Value):
    """The gateway's answer to a :class:`DeliverAsUser` (the reply on its inbox).

    ``sent``: Telegram accepted it (``provider_message_id``). ``flood_wait``: Telegram asks
    the account to wait ``retry_after`` seconds; nothing was sent. ``refused``: Telegram
    refused it for this peer or content (``error_code``; permanent). ``unusable``: the
    session cannot send at all (revoked, deactivated, restricted: ``error_code``); nothing
    was sent. ``retry``: a transient failure; it may go again."""

    status: Literal["sent", "flood_wait", "refused", "unusable", "retry"]
    provider_message_id: str | None = None
    chat_id: str | None = None
    chat_type: str | None = Field(None, description="private, group, supergroup or channel")
    chat_title: str | None = None
    error_code: str | None = None
    reason: str | None = None
    retry_after: float | None = Field(None, ge=0)


@register("mtproto.change", 1)
class ChangeAsUser(_SessionCommand):
    """Outbound's edit or deletion (``outbound.edit`` / ``outbound.delete`` with channel
    ``mtproto``) of a message this session sent: ``provider_message_id`` in the chat
    ``peer``. An edit gives the new ``text`` (with ``parse_mode``, sent as message entities)
    or a media message's new ``caption``; a deletion removes it for everyone. Only the
    session's holder consumes it and answers on the NATS inbox in the ``reply-to`` header
    with a :class:`DeliverResult` (``sent``: applied). Dropped unanswered after
    ``deadline``."""

    request_id: str = Field(min_length=1, max_length=300)
    peer: str = Field(min_length=1, description="the chat, as the send named it")
    provider_message_id: int = Field(ge=1, description="Telegram's id of the message")
    action: Literal["edit", "delete"]
    text: str | None = Field(None, min_length=1)
    caption: str | None = None
    parse_mode: Literal["MarkdownV2", "HTML"] | None = None
    deadline: datetime = Field(description="not applied when read after this (with a timezone)")

    @model_validator(mode="after")
    def _edit_has_content(self) -> ChangeAsUser:
        if self.action == "edit" and (self.text is None) == (self.caption is None):
            raise ValueError("text: an edit gives a text or a caption")
        return self

    def ce_subject(self) -> str:
        return self.request_id


@register("mtproto.fetch_media", 1)
class FetchMedia(_SessionCommand):
    """The CRM's download of a received message's file through this session. Only the
    session's holder consumes it: it reads the message again (a fresh file reference),
    downloads the file with ``upload.getFile`` and writes it, whole or not at all, into the
    shared object store under ``object_key`` (bytes never cross the bus: NATS payloads are
    about 1 MB). It answers on the NATS inbox in the ``reply-to`` header with a
    :class:`MediaFetched`. A command read after ``deadline`` is dropped unanswered."""

    chat_id: str = Field(min_length=1, description="the chat's (marked) id, as in conv.*")
    message_id: int = Field(ge=1, description="Telegram's id of the message in that chat")
    object_key: str = Field(min_length=1, max_length=1000, description="where to store it")
    max_bytes: int = Field(ge=1, description="refuse (too_large) a file over this size")
    deadline: datetime = Field(description="not fetched when read after this (with a timezone)")

    def ce_subject(self) -> str:
        return f"{self.chat_id}:{self.message_id}"


class MediaFetched(Value):
    """The gateway's answer to a :class:`FetchMedia` (the reply on its inbox).

    ``stored``: the file is in the object store under ``object_key`` (``size`` bytes).
    ``too_large``: over ``max_bytes`` (``size`` when Telegram said it); nothing kept.
    ``not_found``: no such message, or it carries no file. ``flood_wait``: Telegram asks
    the account to wait ``retry_after`` seconds. ``refused``: Telegram refused the download
    (``error_code``). ``unusable``: the session cannot be used (revoked, another
    workspace's). ``retry``: a transient failure (connection, object store)."""

    status: Literal[
        "stored", "too_large", "not_found", "flood_wait", "refused", "unusable", "retry"
    ]
    object_key: str | None = None
    size: int | None = Field(None, ge=0)
    mime_type: str | None = None
    error_code: str | None = None
    reason: str | None = None
    retry_after: float | None = Field(None, ge=0)


# --------------------------------------------------------------------------- events


class _SessionEvent(Event):
    about: ClassVar[str] = "session_id"

    session_id: SessionId
    at: datetime


class LoginStep(StrEnum):
    START = "start"
    CODE = "code"
    PASSWORD = "password"  # noqa: S105 (a step name, not a password)


class LoginFailure(StrEnum):
    """Why a login step failed, in words a UI can show."""

    PHONE_NUMBER_INVALID = "phone_number_invalid"
    PHONE_NUMBER_BANNED = "phone_number_banned"
    PHONE_NUMBER_UNOCCUPIED = "phone_number_unoccupied"
    PHONE_CODE_INVALID = "phone_code_invalid"
    PHONE_CODE_EXPIRED = "phone_code_expired"
    PASSWORD_INVALID = "password_invalid"  # noqa: S105
    FLOOD_WAIT = "flood_wait"
    NO_LOGIN_IN_PROGRESS = "no_login_in_progress"
    WRONG_STEP = "wrong_step"
    ALREADY_AUTHORIZED = "already_authorized"
    SESSION_BUSY = "session_busy"
    INVALID_REQUEST = "invalid_request"
    NETWORK = "network"
    TELEGRAM_ERROR = "telegram_error"
    INTERNAL_ERROR = "internal_error"


@register("mtproto.login_code_sent", 1)
class LoginCodeSent(_SessionEvent):
    """Telegram sent a login code for the session's phone; submit it with
    ``mtproto.login_submit_code`` before ``expires_at``."""

    phone_hint: str = Field(description="the phone with its middle digits masked")
    code_type: str = Field(description="app, sms, call, flash_call, ...")
    expires_at: datetime


@register("mtproto.login_password_needed", 1)
class LoginPasswordNeeded(_SessionEvent):
    """The code was right and the account has two-step verification: submit the password
    with ``mtproto.login_submit_password``."""


@register("mtproto.login_succeeded", 1)
class LoginSucceeded(_SessionEvent):
    """The session is authorized and stored (encrypted); an instance claims and connects it."""

    user_id: str = Field(min_length=1)
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None


@register("mtproto.login_failed", 1)
class LoginFailed(_SessionEvent):
    """A login step failed. ``restart_required``: the login must start again with
    ``mtproto.login_start`` (else the same step may be retried, after ``retry_after_s``)."""

    step: LoginStep
    reason: LoginFailure
    message: str
    error_code: str | None = Field(None, description="Telegram's RPC error name")
    retry_after_s: int | None = Field(None, ge=0)
    restart_required: bool = False


class DisconnectReason(StrEnum):
    NETWORK = "network"
    LEASE_LOST = "lease_lost"
    SHUTDOWN = "shutdown"
    HANDED_BACK = "handed_back"
    REVOKED = "revoked"
    LOGOUT = "logout"


@register("mtproto.session_connected", 1)
class SessionConnected(_SessionEvent):
    """The instance holding the session's lease connected it to Telegram."""

    instance: str = Field(min_length=1)
    reconnect: bool = Field(False, description="after a drop, on the same instance")


@register("mtproto.session_disconnected", 1)
class SessionDisconnected(_SessionEvent):
    """The session's connection closed: a network drop (it reconnects), a lost lease, a
    shutdown or a hand-back to balance instances (another instance connects it)."""

    instance: str = Field(min_length=1)
    reason: DisconnectReason
    message: str | None = None


class RevokeReason(StrEnum):
    LOGOUT = "logout"
    AUTH_KEY_UNREGISTERED = "auth_key_unregistered"
    AUTH_KEY_DUPLICATED = "auth_key_duplicated"
    USER_DEACTIVATED = "user_deactivated"


@register("mtproto.session_revoked", 1)
class SessionRevoked(_SessionEvent):
    """The session can no longer be used: logged out, revoked at Telegram, or destroyed by
    Telegram (AUTH_KEY_DUPLICATED). It needs a new login."""

    reason: RevokeReason
    error_code: str | None = None


@register("mtproto.flood_wait", 1)
class FloodWaited(_SessionEvent):
    """Telegram asked the session to wait before repeating a request (FLOOD_WAIT_X).
    ``action``: ``wait`` (held the work and waited) or ``deferred`` (gave the work back to
    resume after ``resume_at``)."""

    operation: str = Field(min_length=1, description="get_history, send_message, send_code...")
    seconds: int = Field(ge=0)
    action: Literal["wait", "deferred"]
    resume_at: datetime


class PeerInfo(Value):
    """A resolved peer: the chat id used in ``conv.*`` events and its names."""

    chat: Chat
    ref: str = Field(min_length=1, description="what the subscriber asked for")


@register("mtproto.subscription_added", 1)
class SubscriptionAdded(_SessionEvent):
    """The session reads this peer from now on (messages after ``last_message_id``).
    ``joined``: the account joined the channel or supergroup to read it (Telegram sends a
    channel's posts to its members only)."""

    peer: PeerInfo
    last_message_id: int = Field(ge=0)
    joined: bool = False


@register("mtproto.subscription_removed", 1)
class SubscriptionRemoved(_SessionEvent):
    """The session stopped reading this peer."""

    ref: str = Field(min_length=1)
    chat_id: str | None = None


class _BackfillEvent(_SessionEvent):
    job_id: str = Field(min_length=1, max_length=64)


@register("mtproto.backfill_progress", 1)
class BackfillProgressed(_BackfillEvent):
    """One page of history was published and checkpointed: ``fetched`` messages so far,
    the next page starts below ``offset_id``."""

    chat: Chat
    fetched: int = Field(ge=0)
    offset_id: int = Field(ge=0)

    def deterministic_id(self) -> str:
        return f"mtbf:{self.session_id}:{self.job_id}:{self.fetched}:{self.offset_id}"


@register("mtproto.backfill_completed", 1)
class BackfillCompleted(_BackfillEvent):
    """The backfill finished: ``stopped_by`` says whether it reached the start of the
    history, the ``until`` date or ``max_messages``."""

    chat: Chat
    fetched: int = Field(ge=0)
    stopped_by: Literal["history_start", "date", "count"]

    def deterministic_id(self) -> str:
        return f"mtbf:{self.session_id}:{self.job_id}:done"


@register("mtproto.backfill_failed", 1)
class BackfillFailed(_BackfillEvent):
    """The backfill cannot go on (unknown peer, session revoked); ``fetched`` messages were
    published before it stopped."""

    reason: str = Field(min_length=1)
    error_code: str | None = None
    fetched: int = Field(0, ge=0)

    def deterministic_id(self) -> str:
        return f"mtbf:{self.session_id}:{self.job_id}:failed"


@register("mtproto.command_rejected", 1)
class CommandRejected(_SessionEvent):
    """A command that arrived over the bus could not be applied (unknown session, invalid
    state, unknown peer); ``command_id`` is the command's ce-id."""

    command_id: str = Field(min_length=1)
    command: str = Field(min_length=1)
    status: int = Field(description="the HTTP status the API would have answered")
    reason: str

    def deterministic_id(self) -> str:
        return f"mtrejected:{self.command_id}"


# --------------------------------------------------------------------------- directory


@register("mtproto.list_dialogs", 1)
class ListDialogs(_SessionCommand):
    """List the session's dialogs (the channels, groups and private chats it is in), newest
    activity first. The session's holder answers with ``mtproto.dialogs_listed`` whose
    ``command_id`` is this command's ce-id (or ``mtproto.command_rejected``)."""

    limit: int = Field(100, ge=1, le=100)


@register("mtproto.search_contacts", 1)
class SearchContacts(_SessionCommand):
    """Search Telegram's public users, groups and channels (and the session's own chats) by
    username or name. Answered by ``mtproto.contacts_found`` (``command_id`` = this ce-id)."""

    query: str = Field(min_length=2, max_length=64)
    limit: int = Field(20, ge=1, le=100)


class DialogInfo(Value):
    """One dialog: its chat (the id used in ``conv.*`` events), the newest message's id and
    time, and how many messages the account has not read."""

    chat: Chat
    top_message_id: int = Field(0, ge=0)
    top_message_at: datetime | None = None
    unread_count: int = Field(0, ge=0)


@register("mtproto.dialogs_listed", 1)
class DialogsListed(_SessionEvent):
    """The answer to ``mtproto.list_dialogs``."""

    command_id: str = Field(min_length=1)
    dialogs: list[DialogInfo]

    def deterministic_id(self) -> str:
        return f"mtdialogs:{self.command_id}"


class ContactFound(Value):
    """A search hit; ``mine``: the account is already in that chat (or it is its contact)."""

    chat: Chat
    mine: bool = False


@register("mtproto.contacts_found", 1)
class ContactsFound(_SessionEvent):
    """The answer to ``mtproto.search_contacts``."""

    command_id: str = Field(min_length=1)
    query: str
    results: list[ContactFound]

    def deterministic_id(self) -> str:
        return f"mtcontacts:{self.command_id}"


# --------------------------------------------------------------------------- account status


class AccountStatus(StrEnum):
    """What the gateway last saw of the Telegram account behind a session."""

    ACTIVE = "active"
    SESSION_REVOKED = "session_revoked"  # logged out elsewhere, or the key was destroyed
    RESTRICTED = "restricted"  # Telegram limits what the account may do
    BANNED = "banned"  # deactivated or banned by Telegram
    FLOOD_LIMITED = "flood_limited"  # a flood wait holds the account's work until `until`


@register("mtproto.account_status_changed", 1)
class AccountStatusChanged(_SessionEvent):
    """The account's status changed (emitted on the change only, not on every connect); CRM
    and analytics keep the latest per session."""

    status: AccountStatus
    reason: str | None = Field(None, description="in words a UI can show")
    error_code: str | None = Field(None, description="Telegram's RPC error name")
    until: datetime | None = Field(None, description="flood_limited: when work resumes")


# --------------------------------------------------------------------------- proxies


class ProxyProbe(Value):
    """One proxy's health check: ``proxy`` is ``<type>://<host>:<port>`` (never its
    credentials), ``error`` why it failed."""

    proxy: str = Field(min_length=1)
    error: str


@register("mtproto.proxy_switched", 1)
class ProxySwitched(_SessionEvent):
    """The session connects through another proxy: the ones in ``skipped`` failed their
    health check (the session's own proxy first, then the gateway's pool, in order)."""

    proxy: str = Field(min_length=1, description="<type>://<host>:<port> now used")
    previous: str | None = None
    skipped: list[ProxyProbe] = Field(default_factory=list)


@register("mtproto.proxies_unavailable", 1)
class ProxiesUnavailable(_SessionEvent):
    """No proxy of the session works: every one failed its health check. The session stays
    disconnected (it keeps checking, with backoff) until one works again."""

    tried: list[ProxyProbe]
