"""One owned session: connect while the lease is held, serve it, reconnect with backoff.

While connected, four tasks run: live updates -> ``conv.*``; upkeep (resolve new
subscriptions, catch up what was missed while away, notice a requested logout); backfill
jobs; and the session's send queue. Everything runs under :func:`while_held`: the moment
the lease may lapse, the work is cancelled and the client disconnected, and only then is the
lease given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from switchboard.events import Event
from switchboard.events.catalog.common import Channel, Chat, ChatType
from switchboard.events.catalog.conv import MessageSent
from switchboard.events.catalog.delivery import DeliveryFailed, DeliveryRetrying, DeliverySent
from switchboard.events.catalog.mtproto import (
    CommandRejected,
    DisconnectReason,
    PeerInfo,
    RevokeReason,
    SendAsUser,
    SessionConnected,
    SessionDisconnected,
    SessionRevoked,
    SubscriptionAdded,
)
from switchboard.mtproto import actions, dialogs, holder_serve
from switchboard.mtproto.backfill import BackfillPorts, history_call, run_backfill
from switchboard.mtproto.convert import (
    chat_id,
    chat_of,
    deleted,
    edited,
    from_others,
    invite_hash,
    is_channel,
    received,
)
from switchboard.mtproto.dialogs import Answers, QueryServer, query_consumer
from switchboard.mtproto.floods import DeferredError, FloodPolicy
from switchboard.mtproto.health import SessionHealth
from switchboard.mtproto.leases import Lease, LeaseLostError, closed_when_lost, while_held
from switchboard.mtproto.media_fetch import MediaServer, media_consumer
from switchboard.mtproto.metrics import (
    BACKFILLS_ACTIVE,
    RECONNECTS,
    SENDS,
    SESSIONS_CONNECTED,
    SESSIONS_OWNED,
)
from switchboard.mtproto.ports import (
    AuthKeyDuplicatedError,
    AuthKeyUnregisteredError,
    ChatWriteForbiddenError,
    DisconnectedError,
    FloodWaitError,
    Message,
    MessageEdited,
    MessagesDeleted,
    MtprotoAdapter,
    MtprotoClient,
    MtprotoError,
    NewMessage,
    OutboxRead,
    Peer,
    PeerNotFoundError,
    PeerType,
    Proxy,
    SessionConfig,
    Update,
    UpdateState,
    UserDeactivatedError,
)
from switchboard.mtproto.proxies import SessionProxies, health_check, label
from switchboard.mtproto.publisher import ConvPublisher
from switchboard.mtproto.registry import forget, register, restrict
from switchboard.mtproto.relay import Relay, change_consumer, deliver_consumer
from switchboard.mtproto.sessions import SessionRecord, SessionStore
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.mtproto.state import SendRecord, StateStore, Subscription
from switchboard.mtproto.status import StatusTracker, unauthorized_reason
from switchboard.mtproto.ttl import IdleTimer, Parking, queued, should_park
from switchboard.runtime import pii
from switchboard.runtime.accounts import AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.failures import (
    Failure,
    RetryPolicy,
    classify,
    describe,
    stored_for_sure,
)
from switchboard.runtime.fingerprint import fingerprint, taken_reason
from switchboard.runtime.logging import get_logger
from switchboard.runtime.objectstore import ObjectStore
from switchboard.runtime.tasks import cancel_and_wait

log = get_logger(__name__)
_T = TypeVar("_T")
STREAM = "MTPROTO"
_REVOKING = (AuthKeyDuplicatedError, AuthKeyUnregisteredError, UserDeactivatedError)
_INFRA = RetryPolicy()  # the runtime's backoff for our own failures: 0.5 s doubling to 15 s
_SETTLED_S = 60.0  # a piece of work that ran this long before failing starts the backoff over


def send_consumer(session_id: str) -> str:
    """The durable consumer of one session's sends: only the lease holder pulls from it, so
    a session's sends go out one at a time, paced, and survive a change of owner."""
    return f"mtproto-send-{session_id}"


def send_subject(session_id: str) -> str:
    return f"cmd.mtproto.send.v1.{session_id}"


def revoke_reason(exc: MtprotoError) -> RevokeReason:
    if isinstance(exc, AuthKeyDuplicatedError):
        return RevokeReason.AUTH_KEY_DUPLICATED
    if isinstance(exc, UserDeactivatedError):
        return RevokeReason.USER_DEACTIVATED
    return RevokeReason.AUTH_KEY_UNREGISTERED


@dataclass
class Deps:
    """What every runner of an instance shares."""

    adapter: MtprotoAdapter
    sessions: SessionStore
    state: StateStore
    bus: Bus
    conv: ConvPublisher
    settings: MtprotoSettings
    owner: str
    # The shared accounts registry (sessions are accounts of channel mtproto for outbound).
    accounts: AccountStore | None = None
    # Where downloads for the CRM are written (media_fetch.py); None: no downloads served.
    objects: ObjectStore | None = None
    # The time of what other processes wrote and will read (command deadlines, pauses, the
    # queue time of queries): the server's clock in the service (``Runtime.clock``).
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class _LogoutRequestedError(Exception):
    """The session was marked for logout: log it out with the open connection."""


class _IdleError(Exception):
    """The session was unused for its TTL and is parked: disconnect and let go."""


class _SessionGoneError(Exception):
    """The session was deleted or revoked elsewhere: disconnect and let go."""


class SessionRunner:
    """Holds one session for as long as its lease lasts."""

    def __init__(self, deps: Deps, session_id: str, lease: Lease) -> None:
        self.deps = deps
        self.session_id = session_id
        self.lease = lease
        self.stopping = asyncio.Event()
        self.stop_reason = DisconnectReason.SHUTDOWN
        self.task: asyncio.Task[None] | None = None
        self.connected = False
        self.connected_at: float | None = None
        self.workspace_id = "default"
        self.chats: dict[str, Subscription] = {}
        self.catching_up: dict[str, int] = {}
        self.caught_up: set[str] = set()
        self.peers: dict[str, Peer] = {}
        self.sends_paused_until: datetime | None = None
        self.update_states: tuple[UpdateState | None, UpdateState | None] = (None, None)
        self.publishing = False  # an update is being published
        self.health = SessionHealth()  # for /health/integrations
        settings = deps.settings
        self.flood = FloodPolicy(
            session_id, settings.flood_hold_max_s, self._emit, self._sleep, deps.now
        )
        self.status = StatusTracker(deps.sessions.pool, session_id, self._publish)
        self.idle = IdleTimer()  # session TTL (ttl.py)
        self.parking = Parking(deps.sessions.pool)
        address = getattr(deps.adapter, "address", None)
        self.proxies = SessionProxies(
            session_id,
            settings.proxy_pool,
            health_check(address, settings.proxy_check_timeout_s),
            self._emit,
        )
        self.relay = Relay(
            deps.bus,
            deps.state,
            deps.sessions,
            session_id,
            lambda: self.workspace_id,
            self._resolve_ref,
            self._emit,
            self._sleep,
            settings.send_interval_s,
            now=deps.now,
            on_restricted=self._restricted,
            on_delivery=self.idle.touch,
            on_sent=self.follow,
            objects=deps.objects,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.task = asyncio.create_task(self._main(), name=f"session {self.session_id}")

    def stop(self, reason: DisconnectReason) -> None:
        self.stop_reason = reason
        self.stopping.set()

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def _may_connect(self) -> bool:
        return self.lease.valid() and not self.stopping.is_set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when the runner stops or its lease is lost."""
        waits = [
            asyncio.ensure_future(self.stopping.wait()),
            asyncio.ensure_future(self.lease.lost.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=max(0.0, seconds))
        finally:
            for w in waits:
                w.cancel()

    async def _emit(self, event: Event) -> None:
        await self._publish(event)
        await self.status.observe(event)  # account status changes it reveals (status.py)
        if self.status.current is not None:
            self.health.account_status = self.status.current.value

    async def _publish(self, event: Event) -> None:
        if event.name.startswith(("conv.", "delivery.")):  # a send as the user: personal
            await pii.publish_sealed(self.deps.bus, event, workspace=self.workspace_id)
            return
        await self.deps.bus.publish(event, workspace_id=self.workspace_id)

    def _now(self) -> datetime:
        return self.deps.now()

    def _set_connected(self, value: bool) -> None:
        self.health.connected(value)
        if value:
            self.connected_at = time.monotonic()
        if value != self.connected:
            SESSIONS_CONNECTED.inc() if value else SESSIONS_CONNECTED.dec()
            self.connected = value

    async def _main(self) -> None:
        SESSIONS_OWNED.inc()
        try:
            await self._run()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and not task.cancelling():
                # Nobody cancelled the runner: a library cancelled something it awaited. It
                # ended silently before (a banned account's session flapped with no trace).
                log.exception(
                    "session runner ended by a cancel of its own", session_id=self.session_id
                )
            raise
        except Exception:
            log.exception("session runner failed", session_id=self.session_id)
        finally:
            self._set_connected(False)
            # Every path above has disconnected by now: only then may the lease go.
            await self.lease.release()
            SESSIONS_OWNED.dec()
            self.health.forget(f"mtproto/{self.session_id}")

    async def _run(self) -> None:
        reconnect, failures = False, 0
        settings = self.deps.settings
        while self._may_connect():
            # Read where a database restart is waited out: raised, it ended the runner and
            # gave the lease up, and the sessions bounced between instances until it was back.
            record = await self._kept(
                "session record", lambda: self.deps.sessions.get_session(self.session_id)
            )
            if record is None or record.status == "revoked":
                return  # deleted, revoked, or stopped while the database was away
            self.workspace_id = record.workspace_id
            try:
                await while_held(self.lease, self._session(record, reconnect))
                return
            except LeaseLostError:
                await self._disconnected(DisconnectReason.LEASE_LOST, self.lease.lost_reason)
                return
            except _REVOKING as exc:
                await self._disconnected(DisconnectReason.REVOKED, exc.reason)
                await self._revoked(record, exc)
                return
            except _SessionGoneError:
                await self._disconnected(DisconnectReason.REVOKED, "session deleted")
                return
            except _IdleError:
                idle = f"idle for {settings.idle_ttl_s} s: parked until needed"
                await self._disconnected(DisconnectReason.HANDED_BACK, idle)
                return
            except Exception as exc:
                # A drop (DisconnectedError), or a fault of ours (database, bus): reconnect
                # with backoff, keeping the lease, rather than bouncing between instances.
                if not isinstance(exc, DisconnectedError):
                    log.exception("session failed; reconnecting", session_id=self.session_id)
                await self._disconnected(DisconnectReason.NETWORK, str(exc) or type(exc).__name__)
                RECONNECTS.inc()
                reconnect, failures = True, failures + 1
                delay = min(settings.reconnect_max_s, settings.reconnect_initial_s * 2**failures)
                await self._sleep(
                    delay if not self._was_healthy() else settings.reconnect_initial_s
                )

    def _was_healthy(self) -> bool:
        """Connected for a while before the drop: reconnect at once, not after a backoff."""
        return self.connected_at is not None and time.monotonic() - self.connected_at > 30

    async def _disconnected(self, reason: DisconnectReason, message: str | None) -> None:
        self.health.failed(f"disconnected ({reason.value}): {message}")
        was = self.connected
        self._set_connected(False)
        if was:
            with contextlib.suppress(Exception):
                await self._emit(
                    SessionDisconnected(
                        session_id=self.session_id,
                        at=self._now(),
                        instance=self.deps.owner,
                        reason=reason,
                        message=message,
                    )
                )

    async def _revoked(self, record: SessionRecord, exc: MtprotoError) -> None:
        if record.status == "logging_out":  # the key is dead anyway: the logout is done
            await self._finish_logout()
            return
        reason = revoke_reason(exc)
        log.error("session revoked", session_id=self.session_id, reason=reason.value)
        await self.deps.sessions.revoke(self.session_id, reason.value)
        if self.deps.accounts is not None:
            await register(self.deps.accounts, self.session_id, self.workspace_id, "revoked")
        await self._emit(
            SessionRevoked(
                session_id=self.session_id, at=self._now(), reason=reason, error_code=exc.reason
            )
        )

    async def _restricted(self, until: datetime) -> None:
        if self.deps.accounts is not None:
            await restrict(self.deps.accounts, self.session_id, self.workspace_id, until)

    async def _connect(self, client: MtprotoClient, proxy: Proxy | None) -> None:
        """Connect, retrying drops with exponential backoff and jitter, only while held.
        Through a proxy a failed connect is not retried here: the proxy is reported failed
        and the runner's next round rotates to the next one (proxies.py)."""
        if proxy is not None:
            if not self._may_connect():
                raise DisconnectedError("stopping")
            try:
                await client.connect()
            except DisconnectedError as exc:
                self.proxies.failed(proxy, f"connect failed: {exc}")
                raise
            return

        def give_up(_: RetryCallState) -> bool:
            return not self._may_connect()

        settings = self.deps.settings
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(DisconnectedError),
            wait=wait_exponential_jitter(
                multiplier=settings.reconnect_initial_s,
                max=settings.reconnect_max_s,
                jitter=settings.reconnect_initial_s,
            ),
            stop=give_up,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if not self._may_connect():
                    raise DisconnectedError("stopping")
                await client.connect()

    async def _session(self, record: SessionRecord, reconnect: bool) -> None:
        stored = await self.deps.state.update_state(self.session_id)
        self.update_states = (stored, stored)
        config = await self.proxies.apply(replace(record.config(), update_state=stored))
        self.health.proxy = label(config.proxy) if config.proxy else None
        client = self.deps.adapter.client(config)
        try:
            async with closed_when_lost(self.lease, lambda: self._drop(client)):
                await self._run_connected(client, config, record, reconnect)
        finally:
            await self._drop(client)

    async def _run_connected(
        self, client: MtprotoClient, config: SessionConfig, record: SessionRecord, reconnect: bool
    ) -> None:
        """Connect, check the account, announce it, serve: closed by the caller."""
        await self._connect(client, config.proxy)
        self.lease.require("connecting")  # lost as the connect completed: its cancel may be gone
        self.proxies.connected()
        if record.status == "logging_out":
            await self._logout(client)
            return
        if not await client.is_authorized():
            raise await unauthorized_reason(client)
        exported = client.export_session()
        if exported and exported != record.secrets.session:
            await self.deps.sessions.update_secret(self.session_id, exported)
        self._set_connected(True)
        self.idle.touch()
        await self.parking.wake(self.session_id)  # claimed because it is needed again
        if self.deps.accounts is not None:
            await register(self.deps.accounts, self.session_id, self.workspace_id, "active")
        await self._emit(
            SessionConnected(
                session_id=self.session_id,
                at=self._now(),
                instance=self.deps.owner,
                reconnect=reconnect,
            )
        )
        try:
            await self._serve(client, config)
        except _LogoutRequestedError:
            await self._logout(client)

    async def _drop(self, client: MtprotoClient) -> None:
        """Close the connection (again, harmlessly, when it is closed already)."""
        try:
            await client.disconnect()
        except Exception:
            log.exception("disconnect failed", session_id=self.session_id)

    async def _serve(self, client: MtprotoClient, config: SessionConfig) -> None:
        """Run the connected work until a stop, a drop or an error."""
        # Each chat is in catch-up before any update is read: the difference since the
        # stored update state arrives first, and must find the chats it is published for.
        self.chats, self.caught_up, self.catching_up = {}, set(), {}
        await self._load_chats()
        # The updates end the connection whatever stops them: an update taken from the queue
        # and not published is caught up on the next connection, from the stored state.
        work = {asyncio.create_task(self._updates(client), name="updates")}
        kept: dict[str, Callable[[], Awaitable[None]]] = {
            "upkeep": lambda: self._upkeep(client),
            "backfills": lambda: self._backfills(client),
            "sends": lambda: self._sends(client),
            "queries": lambda: self._queries(client),
            "deliveries": lambda: self.relay.run(client),
            "changes": lambda: self.relay.changes(client),
            "media": lambda: self._media(client),
        }
        work |= {asyncio.create_task(self._kept(n, w), name=n) for n, w in kept.items()}
        if config.proxy is not None:
            work.add(asyncio.create_task(self._watch_proxy(config), name="proxy"))
        stop = asyncio.create_task(self.stopping.wait())
        try:
            done, _ = await asyncio.wait(work | {stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*work, stop):
                task.cancel()
            # The connection goes before the work winds down: a task's cleanup may wait on
            # the bus (an outage: the very case that loses a lease), and a connection that
            # outlives its lease meets the next holder's (AUTH_KEY_DUPLICATED, seen in the
            # chaos test 4 s after a lease was lost).
            await self._drop(client)
            # Cancelled again while one runs on: a task whose cancel was lost kept the
            # session down for ever, its lease renewed (runtime.tasks says how).
            await cancel_and_wait([*work, stop])
        for task in done:
            if task is not stop and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if self.stopping.is_set():
            await self._disconnected(self.stop_reason, None)
            return
        raise DisconnectedError("the update stream ended")

    async def _kept(self, name: str, work: Callable[[], Awaitable[_T]]) -> _T | None:
        """Run one piece of the session's work, starting it again after a failure of our
        own infrastructure (the database, the bus) with the runtime's backoff: a Postgres
        restart or a bus timeout dropped every session's Telegram connection at once (the
        chaos test's logs), and reconnecting them all is what Telegram frowns on. Telegram's
        own errors and anything else still end the connection. Its result; None when the
        runner stops or loses its lease before the work could be done."""
        failures = 0
        while True:
            started = time.monotonic()
            try:
                return await work()
            except MtprotoError:
                raise
            except Exception as exc:
                if classify(exc) is not Failure.INFRASTRUCTURE:
                    raise
                failures = 1 if time.monotonic() - started > _SETTLED_S else failures + 1
                delay = _INFRA.infra_delay(failures)
                log.warning(
                    "session work failed on our side; starting it again",
                    session_id=self.session_id,
                    work=name,
                    error=describe(exc),
                    retry_in_s=delay,
                )
                await self._sleep(delay)
                if self.stopping.is_set() or self.lease.lost.is_set():
                    return None  # the connection ends anyway: nothing to start again

    async def _watch_proxy(self, config: SessionConfig) -> None:
        """Check the proxy in use every ``proxy_check_interval_s``; one that fails ends the
        connection (DisconnectedError), and the reconnect rotates to the next proxy."""
        proxy = config.proxy
        assert proxy is not None
        while True:
            await self._sleep(self.deps.settings.proxy_check_interval_s)
            if not self._may_connect():
                return
            error = await self.proxies.check(proxy, config)
            if error is not None:
                self.proxies.failed(proxy, error)
                raise DisconnectedError(f"proxy {label(proxy)} failed its check: {error}")

    # ------------------------------------------------------------------ logout

    async def _logout(self, client: MtprotoClient) -> None:
        with contextlib.suppress(*_REVOKING):
            await client.log_out()
        await self._finish_logout()

    async def _finish_logout(self) -> None:
        with contextlib.suppress(Exception):
            await self.deps.bus.js.delete_consumer(STREAM, send_consumer(self.session_id))
        await dialogs.forget(self.deps.bus, self.session_id)
        with contextlib.suppress(Exception):
            await self.deps.bus.js.delete_consumer(STREAM, deliver_consumer(self.session_id))
        with contextlib.suppress(Exception):
            await self.deps.bus.js.delete_consumer(STREAM, change_consumer(self.session_id))
        with contextlib.suppress(Exception):
            await self.deps.bus.js.delete_consumer(STREAM, media_consumer(self.session_id))
        await self.deps.sessions.delete_session(self.session_id)
        if self.deps.accounts is not None:
            await forget(self.deps.accounts, self.session_id)
        self._set_connected(False)
        await self._emit(
            SessionRevoked(session_id=self.session_id, at=self._now(), reason=RevokeReason.LOGOUT)
        )

    # ------------------------------------------------------------------ live updates

    async def _updates(self, client: MtprotoClient) -> None:
        async for update in client.updates():
            self.publishing = True
            try:
                # Telegram sends an update once: a failure of our bus or database while it
                # is announced is waited out here (each step of it is idempotent). Left to
                # end the connection, it lost the update for good (a read receipt).
                await stored_for_sure(functools.partial(self.on_update, update))
            finally:
                self.publishing = False

    async def on_update(self, update: Update) -> None:
        now = self._now()
        self.health.succeeded()  # an update is proof the session works
        if isinstance(update, NewMessage | MessageEdited):
            message = update.message
            chat = chat_id(message.peer)
            if chat not in self.chats:
                return
            if not from_others(message):  # the account's own: no customer's message
                if isinstance(update, NewMessage):
                    await self._seen(chat, message.id)
                return
            if isinstance(update, NewMessage):
                event: Event = received(self.session_id, message, now)
            else:
                event = edited(self.session_id, message, now)
            await self.deps.conv.publish([event], workspace_id=self.workspace_id, source="live")
            await self._remember([message])
            if isinstance(update, NewMessage):
                await self._seen(chat, message.id)
        elif isinstance(update, MessagesDeleted):
            await self._deleted(update, now)
        elif isinstance(update, OutboxRead):
            await self.relay.read(update)

    async def _deleted(self, update: MessagesDeleted, now: datetime) -> None:
        by_chat: dict[str, list[int]] = defaultdict(list)
        chats: dict[str, Chat] = {}
        if update.peer is not None:
            chat = chat_of(update.peer)
            by_chat[chat.id] = list(update.ids)
            chats[chat.id] = chat
        else:  # private chats and basic groups: ids are per account, look their chat up
            found = await self.deps.state.chats_of(self.session_id, list(update.ids))
            for mid, (cid, kind) in found.items():
                by_chat[cid].append(mid)
                chats[cid] = Chat(
                    id=cid, type=ChatType.PRIVATE if kind == "user" else ChatType.GROUP
                )
        events: list[Event] = [
            deleted(self.session_id, chats[cid], ids, now)
            for cid, ids in by_chat.items()
            if cid in self.chats
        ]
        await self.deps.conv.publish(events, workspace_id=self.workspace_id, source="live")

    async def _remember(self, messages: list[Message]) -> None:
        items = [
            (m.id, chat_id(m.peer), m.peer.type.value) for m in messages if not is_channel(m.peer)
        ]
        await self.deps.state.remember_chats(self.session_id, items)

    async def _seen(self, chat: str, message_id: int) -> None:
        """Move the chat's last seen id, unless a catch-up of that chat is running (then the
        catch-up moves it when everything older is published)."""
        if chat in self.catching_up:
            self.catching_up[chat] = max(self.catching_up[chat], message_id)
        else:
            await self.deps.state.advance(self.session_id, chat, message_id)

    # ------------------------------------------------------------------ upkeep

    async def _upkeep(self, client: MtprotoClient) -> None:
        deferred_until = 0.0
        while True:
            status = await self.deps.sessions.status(self.session_id)
            if status == "logging_out":
                raise _LogoutRequestedError
            if status is None or status == "revoked":
                raise _SessionGoneError
            subs = await self._load_chats()
            active = self.chats
            # A chat followed because the session wrote to it does not keep it awake: parked,
            # it reads the chat again when next woken (a catch-up from its last seen id).
            await self._park_if_idle(any(not s.followed for s in active.values()))
            if time.monotonic() >= deferred_until:
                try:
                    for sub in subs:
                        if sub.status == "pending":
                            await self._resolve(client, sub)
                    await self._leave_unsubscribed(client)
                    for chat, sub in active.items():
                        if chat not in self.caught_up:
                            await self._catch_up(client, sub)
                except DeferredError as exc:
                    deferred_until = time.monotonic() + exc.seconds
            await self.health.probe_if_due(
                client, self.deps.settings.probe_interval_s, key=f"mtproto/{self.session_id}"
            )
            await self._keep_update_state(client)
            await self._sleep(self.deps.settings.tick_s)

    async def _park_if_idle(self, reading: bool) -> None:
        """Raise _IdleError when the session has been unused for its TTL and is now parked
        (ttl.py); a command that reached its queues meanwhile un-parks it at once."""
        if not should_park(self.deps.settings.idle_ttl_s, self.idle.idle_for(), reading):
            return
        sid = self.session_id
        if not await self.parking.park(sid):
            self.idle.touch()  # a backfill or a pending subscription: still in use
            return
        if await queued(
            self.deps.bus,
            STREAM,
            [
                send_consumer(sid),
                query_consumer(sid),
                deliver_consumer(sid),
                change_consumer(sid),
                media_consumer(sid),
            ],
        ):
            await self.parking.wake(sid)
            self.idle.touch()
            return
        raise _IdleError

    async def _keep_update_state(self, client: MtprotoClient) -> None:
        """Store the update state the client had one tick ago, if nothing was waiting to be
        published then nor now: what Telethon had applied then has been dispatched and
        published since. The current state may be ahead of what is published (stored, a
        SIGKILL would make the next holder skip those: new posts would still come from the
        catch-up, edits and deletions not). Too old only repeats what dedup drops."""
        saved, previous = self.update_states
        # None while an update is read but not yet published, or waiting to be read.
        current = None if self.publishing else client.update_state()
        self.update_states = (saved, current)
        if previous is not None and current is not None and previous != saved:
            await self.deps.state.save_update_state(self.session_id, previous)
            self.update_states = (previous, self.update_states[1])

    async def _load_chats(self) -> list[Subscription]:
        """Read the subscriptions; the active ones are the chats updates are published for."""
        subs = await self.deps.state.subscriptions(self.session_id)
        active = {s.chat_id: s for s in subs if s.status == "active" and s.chat_id}
        for chat, sub in active.items():
            # Until its catch-up is done, live messages of a chat must not move its last
            # seen id (older missed ones would be skipped after a crash).
            if chat not in self.caught_up:
                self.catching_up.setdefault(chat, sub.last_seen_id)
        self.chats = active
        return subs

    async def _resolve(self, client: MtprotoClient, sub: Subscription) -> None:
        """Resolve a new subscription; it reads messages from now on. Telegram sends a
        channel's posts to its members only: a channel or supergroup is joined first, and an
        invite link is joined through."""
        try:
            peer, joined = await self._member_of(client, sub.ref)
        except (DisconnectedError, *_REVOKING):
            raise  # the session's, not the subscription's: reconnect (or stop) and try again
        except MtprotoError as exc:
            # Telegram refused this peer (any reason, named): the subscription fails, never
            # the session (retried at every reconnect, it would drop the connection for good).
            if isinstance(exc, PeerNotFoundError) and invite_hash(sub.ref) is None:
                reason, said = exc.reason, f"{sub.ref}: {exc.reason}"
            else:
                reason = said = f"{exc.reason}: Telegram would not let the account read {sub.ref}"
            await self.deps.state.fail_subscription(self.session_id, sub.ref, reason)
            status = actions.failure_status(reason)
            await self._reject(sub.command_id, "mtproto.subscribe", status, said)
            return
        chat = chat_of(peer)
        # Read live messages of the chat from this moment; the newest id is fetched after,
        # so nothing falls between "newest at subscription" and "live".
        known = chat.id in self.chats
        self.catching_up.setdefault(chat.id, 0)
        self.chats.setdefault(chat.id, sub)
        try:
            newest = await self.flood.call("get_history", lambda: client.get_history(peer, limit=1))
            last = max([m.id for m in newest] + [0])
            result = await self.deps.state.activate(
                self.session_id, sub.ref, peer, chat.id, last, joined
            )
            if result != "active":
                if not known:
                    self.chats.pop(chat.id, None)
                await self._reject(
                    sub.command_id, "mtproto.subscribe", 409, f"{sub.ref}: already subscribed"
                )
                return
            live = self.catching_up.get(chat.id, 0)
            if live > last:
                await self.deps.state.advance(self.session_id, chat.id, live)
        finally:
            self.catching_up.pop(chat.id, None)
        self.caught_up.add(chat.id)
        self.peers[sub.ref] = peer
        await self._emit(
            SubscriptionAdded(
                session_id=self.session_id,
                at=self._now(),
                peer=PeerInfo(chat=chat, ref=sub.ref),
                last_message_id=last,
                joined=joined,
            )
        )

    async def _leave_unsubscribed(self, client: MtprotoClient) -> None:
        """Leave the chats that subscriptions joined and unsubscribing gave up (one read
        again under another subscription meanwhile is kept)."""
        for chat, peer in await self.deps.state.leaves(self.session_id):
            if chat not in self.chats:
                try:
                    await self.flood.call("leave", functools.partial(client.leave, peer))
                    log.info("left a chat its subscription had joined",
                             session_id=self.session_id, chat_id=chat)  # fmt: skip
                except (DisconnectedError, *_REVOKING):
                    raise
                except MtprotoError as exc:  # refused for good: not tried at every tick
                    log.warning(
                        "could not leave a chat its subscription had joined",
                        session_id=self.session_id,
                        chat_id=chat,
                        error=exc.reason,
                    )
            await self.deps.state.left(self.session_id, chat)

    async def _member_of(self, client: MtprotoClient, ref: str) -> tuple[Peer, bool]:
        """The peer ``ref`` names with the account a member where it must be to read it,
        and whether it joined now."""
        invite = invite_hash(ref)
        if invite is not None:
            return await self.flood.call("join_invite", lambda: client.join_invite(invite))
        peer = await self.flood.call("resolve_peer", lambda: client.resolve_peer(ref))
        if peer.type not in (PeerType.CHANNEL, PeerType.MEGAGROUP):
            return peer, False
        return peer, await self.flood.call("join_channel", lambda: client.join_channel(peer))

    async def _reject(self, command_id: str | None, command: str, status: int, reason: str) -> None:
        if command_id is None:
            return
        await self._emit(
            CommandRejected(
                session_id=self.session_id,
                at=self._now(),
                command_id=command_id,
                command=command,
                status=status,
                reason=reason,
            )
        )

    async def _catch_up(self, client: MtprotoClient, sub: Subscription) -> None:
        """Publish what the chat received while the session was away (ids above the last
        seen), then move the last seen id past it and past live messages meanwhile."""
        assert sub.peer is not None
        assert sub.chat_id is not None
        peer, chat = sub.peer, sub.chat_id
        self.catching_up.setdefault(chat, sub.last_seen_id)
        offset, newest, total = 0, sub.last_seen_id, 0
        limit = self.deps.settings.catchup_max
        while True:
            page = await self.flood.call(
                "get_history", history_call(client, peer, offset, 100, sub.last_seen_id)
            )
            if not page:
                break
            now = self._now()
            await self.deps.conv.publish(
                [received(self.session_id, m, now) for m in page if from_others(m)],
                workspace_id=self.workspace_id,
                source="catch_up",
            )
            await self._remember(page)
            newest = max(newest, *(m.id for m in page))
            offset = min(m.id for m in page)
            total += len(page)
            if limit and total >= limit:
                log.warning(
                    "catch-up limit reached; older missed messages need a backfill",
                    session_id=self.session_id,
                    chat=chat,
                    fetched=total,
                )
                break
        # Everything up to `newest` is published, and live ones meanwhile: move past both.
        newest = max(newest, self.catching_up.pop(chat, 0))
        if newest > sub.last_seen_id:
            await self.deps.state.advance(self.session_id, chat, newest)
        self.caught_up.add(chat)

    # ------------------------------------------------------------------ backfills

    async def _resolve_ref(self, client: MtprotoClient, ref: str) -> Peer:
        peer = self.peers.get(ref)
        if peer is None:
            sub = await self.deps.state.subscription(self.session_id, ref)
            peer = sub.peer if sub and sub.peer else await client.resolve_peer(ref)
            self.peers[ref] = peer
        return peer

    async def _backfills(self, client: MtprotoClient) -> None:
        ports = BackfillPorts(
            client=client,
            state=self.deps.state,
            conv=self.deps.conv,
            flood=self.flood,
            emit=self._emit,
            resolve=lambda ref: self._resolve_ref(client, ref),
            page_size=self.deps.settings.backfill_page,
        )
        while True:
            job = await self.deps.state.next_backfill(self.session_id, self._now())
            if job is None:
                await self._sleep(self.deps.settings.tick_s)
                continue
            BACKFILLS_ACTIVE.inc()
            try:
                outcome = await run_backfill(ports, job)
            finally:
                BACKFILLS_ACTIVE.dec()
            log.info("backfill ran", session_id=self.session_id, job=job.job_id, outcome=outcome)
            if outcome in ("deferred", "stale"):
                await self._sleep(self.deps.settings.tick_s)

    # ------------------------------------------------------------------ queries

    async def _queries(self, client: MtprotoClient) -> None:
        """Dialogs and contact search for whoever asks (dialogs.py)."""
        answers = Answers(self.deps.sessions.pool)
        server = QueryServer(
            self.deps.bus, answers, self.session_id, self.workspace_id, client, now=self.deps.now
        )
        server.on_query = self.idle.touch
        await server.run()

    async def _media(self, client: MtprotoClient) -> None:
        """The CRM's downloads of received files (media_fetch.py)."""
        if self.deps.objects is None:
            return
        server = MediaServer(
            self.deps.bus,
            self.deps.objects,
            self.session_id,
            lambda: self.workspace_id,
            self._resolve_ref,
            now=self.deps.now,
            on_fetch=self.idle.touch,
        )
        await server.run(client)

    # ------------------------------------------------------------------ sends

    async def _sends(self, client: MtprotoClient) -> None:
        settings = self.deps.settings
        config = holder_serve.consumer(
            send_consumer(self.session_id),
            max(60.0, settings.flood_hold_max_s * 2 + 30),
            DeliverPolicy.ALL,
            subject=send_subject(self.session_id),
        )
        record = await self.deps.sessions.get_session(self.session_id)
        self.sends_paused_until = record.send_paused_until if record else None

        async def send(msg: Msg) -> None:
            try:
                called = await self._send_one(client, msg)
            except BaseException:
                # Back now, not after the (long) ack wait: the next owner of the session
                # finishes it (a recorded outcome is published, not resent).
                with contextlib.suppress(Exception):
                    await msg.nak()
                raise
            if called:
                await self._sleep(settings.send_interval_s)

        await holder_serve.serve(self.deps.bus, config, 1, send, before_fetch=self._sends_resumed)

    async def _sends_resumed(self) -> None:
        """Wait out a pause of the session's sends (a flood wait longer than it holds)."""
        while (paused := self.sends_paused_until) is not None and paused > self._now():
            await self._sleep((paused - self._now()).total_seconds())

    async def _send_one(self, client: MtprotoClient, msg: Msg) -> bool:
        """Send one command; True when Telegram was called (pace before the next)."""
        self.idle.touch()
        consumer = send_consumer(self.session_id)
        command = await holder_serve.decode_command(self.deps.bus, msg, SendAsUser, consumer)
        if command is None:
            return False
        cmd, envelope = command
        if envelope.workspace_id != self.workspace_id:
            # Another workspace's session does not exist for the command: refused, with the
            # message it names left as it is (nothing sent, no delivery event).
            unknown = actions.Result(404, reason=f"no session {self.session_id!r}")
            await actions.reject(self.deps.bus, envelope, cmd.name, self.session_id, unknown)
            await holder_serve.done(self.deps.bus, msg)
            return False
        done = await self.deps.state.send_record(self.workspace_id, cmd.message_id)
        body = fingerprint(cmd)
        if done is not None and done.taken_by_another(body):
            # Not a repeat: another body under a taken id is refused, the send it names
            # left as it is (the API refuses it too, once the first is on record).
            taken = actions.Result(409, reason=taken_reason(cmd.message_id))
            await actions.reject(self.deps.bus, envelope, cmd.name, self.session_id, taken)
            await holder_serve.done(self.deps.bus, msg)
            return False
        if done is not None and done.status in ("sent", "failed"):
            if not done.outcome_published:
                await self._publish_recorded(client, cmd, done)
            await holder_serve.done(self.deps.bus, msg)
            return False
        started = time.monotonic()
        while True:
            attempt = await self.deps.state.send_attempt(
                self.workspace_id, cmd.message_id, self.session_id, body
            )
            try:
                peer = await self._resolve_ref(client, cmd.peer)
                sent = await client.send_message(peer, cmd.text, reply_to=cmd.reply_to)
            except FloodWaitError as exc:
                if not await self._send_flood(cmd, msg, attempt, exc):
                    return True
                continue
            except (PeerNotFoundError, ChatWriteForbiddenError) as exc:
                await self._send_failed(cmd, exc.reason, attempt)
                await holder_serve.done(self.deps.bus, msg)
                return True
            except (DisconnectedError, *_REVOKING):
                await msg.nak()
                raise
            except MtprotoError as exc:
                await self._send_failed(cmd, exc.reason, attempt)
                await holder_serve.done(self.deps.bus, msg)
                return True
            await self._send_ok(cmd, peer, sent, attempt, started)
            await holder_serve.done(self.deps.bus, msg)
            return True

    async def _send_flood(
        self, cmd: SendAsUser, msg: Msg, attempt: int, exc: FloodWaitError
    ) -> bool:
        """A flood wait on a send: True to retry now (waited it out), False when deferred
        (the command comes back after the wait; sends of the session pause meanwhile)."""
        retry_at = self._now() + timedelta(seconds=exc.seconds)
        self.health.flood_wait("send_message", exc.seconds)
        await self._emit(
            DeliveryRetrying(
                **self._delivery(cmd, cmd.peer),
                attempt=attempt,
                reason=f"Telegram asks to wait {exc.seconds} s",
                error_code=exc.reason,
                retry_at=retry_at,
            )
        )
        try:
            await self.flood.waited("send_message", exc.seconds)
        except DeferredError as deferred:
            self.sends_paused_until = deferred.resume_at
            await self.deps.sessions.pause_sends(self.session_id, deferred.resume_at)
            await msg.nak(delay=exc.seconds)
            return False
        return True

    async def _send_ok(
        self, cmd: SendAsUser, peer: Peer, sent: Message, attempt: int, started: float
    ) -> None:
        # Recorded before the events: a redelivery must find it and never send again. The
        # events follow, and a redelivery after they failed publishes them from the record.
        await self.deps.state.send_done(
            self.workspace_id, cmd.message_id, "sent", str(sent.id), None, published=False
        )
        SENDS.labels("sent").inc()
        self.health.succeeded(time.monotonic() - started)
        latency_ms = (time.monotonic() - started) * 1000
        await self._sent_events(cmd, peer, str(sent.id), attempt, sent.date, latency_ms)
        await self.follow(peer, sent.id)

    async def follow(self, peer: Peer, sent_id: int) -> None:
        """A private chat the session wrote to is read from that message on, so the
        person's answer reaches the CRM (``follow_private_sends``): read live from this
        moment (nothing to catch up: the connection is live, and no answer precedes the
        message it answers), and subscribed under the chat's id, so a later connection
        catches it up from its last seen message. Only a failure to record it is logged:
        the send is done, and the next send to the chat tries again."""
        chat = chat_of(peer)
        if (
            not self.deps.settings.follow_private_sends
            or chat.type is not ChatType.PRIVATE
            or chat.id in self.chats
        ):
            return
        self.chats[chat.id] = Subscription(self.session_id, chat.id, "active", chat.id, peer,
                                           sent_id)  # fmt: skip
        self.caught_up.add(chat.id)
        try:
            made = await self.deps.state.follow(self.session_id, peer, chat.id, sent_id)
        except Exception as exc:  # the send went out: only reading its answers is lost
            self.chats.pop(chat.id, None)
            self.caught_up.discard(chat.id)
            log.warning("could not follow a private chat written to", session=self.session_id,
                        error=str(exc))  # fmt: skip
            return
        if made:
            info = PeerInfo(chat=chat, ref=chat.id)
            await self._emit(SubscriptionAdded(session_id=self.session_id, at=self._now(),
                                               peer=info, last_message_id=sent_id))  # fmt: skip

    async def _sent_events(
        self,
        cmd: SendAsUser,
        peer: Peer,
        provider_message_id: str,
        attempt: int,
        sent_at: datetime,
        latency_ms: float | None,
    ) -> None:
        chat = chat_of(peer)
        await self._emit(
            DeliverySent(
                **self._delivery(cmd, chat.id),
                provider_message_id=provider_message_id,
                attempt=attempt,
                latency_ms=latency_ms,
            )
        )
        await self._emit(
            MessageSent(
                channel=Channel.MTPROTO,
                account=self.session_id,
                chat=chat,
                message_id=cmd.message_id,
                provider_message_id=provider_message_id,
                text=cmd.text,
                content_kind="text",
                sent_at=sent_at,
            )
        )
        await self.deps.state.outcome_published(self.workspace_id, cmd.message_id)

    async def _send_failed(self, cmd: SendAsUser, reason: str, attempts: int) -> None:
        await self.deps.state.send_done(
            self.workspace_id, cmd.message_id, "failed", None, reason, published=False
        )
        SENDS.labels("failed").inc()
        self.health.failed(f"send refused: {reason}")
        await self._failed_events(cmd, reason, attempts)

    async def _failed_events(self, cmd: SendAsUser, reason: str, attempts: int) -> None:
        await self._emit(
            DeliveryFailed(
                **self._delivery(cmd, cmd.peer),
                reason=f"Telegram refused the message: {reason}",
                error_code=reason,
                permanent=True,
                attempts=attempts,
            )
        )
        await self.deps.state.outcome_published(self.workspace_id, cmd.message_id)

    def _delivery(self, cmd: SendAsUser, recipient: str) -> dict[str, Any]:
        """What every delivery event of a send says of it, now."""
        return {
            "message_id": cmd.message_id,
            "channel": Channel.MTPROTO,
            "account": self.session_id,
            "recipient": recipient,
            "at": self._now(),
        }

    async def _publish_recorded(
        self, client: MtprotoClient, cmd: SendAsUser, done: SendRecord
    ) -> None:
        """Publish the events of an outcome recorded by an earlier delivery whose publish
        failed (same event ids, so JetStream drops what did get through)."""
        if done.status == "failed":
            await self._failed_events(cmd, done.reason or "refused", done.attempts)
            return
        peer = await self._resolve_ref(client, cmd.peer)
        await self._sent_events(
            cmd,
            peer,
            done.provider_message_id or "",
            done.attempts,
            done.updated_at or self._now(),
            None,
        )
