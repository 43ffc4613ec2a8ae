"""The send pipeline: one command from OUTBOUND to a provider call and delivery events.

Order of things for one command: its attempt record is created (or found: a command whose
record says it is done is acked and nothing else); expired commands fail; campaign sends
follow their campaign (held while it is paused, failed as cancelled once it is cancelled);
the circuit breaker may hold it; its account's scheduler gives it a shared rate slot (and
its recipient's); at the slot it is sent once; the outcome is recorded and announced
before the command is acked. Retries are redeliveries with a delay (backoff with jitter),
so a retry survives a crash of this instance like everything else.

KV and bus round trips per sent message: the record's create and final write, a share of a
slot lease, the recipient's claim, and the delivery events (published concurrently).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Protocol

from nats.aio.msg import Msg
from prometheus_client import Counter

from switchboard.events import Envelope
from switchboard.events.base import Message
from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.delivery import (
    DeliveryFailed,
    DeliveryQueued,
)
from switchboard.events.catalog.outbound import (
    SendConversion,
    SendEmail,
    SendMessage,
    SendSms,
    SyncAddressBook,
)
from switchboard.outbound import erasure
from switchboard.outbound.attempts import (
    Announcement,
    Attempt,
    Attempts,
    Verdict,
    claim,
)
from switchboard.outbound.campaigns.pool import (
    MOVED,
    PoolHealth,
    member_key,
    members,
    moved_id,
    next_member,
    tried,
)
from switchboard.outbound.http import SendWindow, SlotMissedError, send_window
from switchboard.outbound.limits import SendLimits, account_key, send_limits
from switchboard.outbound.media_limits import too_large
from switchboard.outbound.outcomes import (
    CANCELLED,
    ERASED,
    ERASED_REASON,
    CampaignHooks,
    Outcome,
    stored_and_announced,
)
from switchboard.outbound.pacing import Holds, RoundTrips, lateness
from switchboard.outbound.providers.base import (
    MessagingClient,
    ProviderError,
    Scope,
    Sent,
    timed_out,
)
from switchboard.outbound.providers.mtproto import UNUSABLE
from switchboard.outbound.ratelimit import SharedLimiter, pause_key
from switchboard.outbound.schedule import (
    HOLD_HOP,
    ScheduleChanges,
    effective_time,
    fired_for,
    hold,
)
from switchboard.outbound.scheduler import Schedulers, Ticket
from switchboard.outbound.share import AccountShare
from switchboard.outbound.text_limits import too_long
from switchboard.outbound.turns import Turns
from switchboard.outbound.uploads import UploadMissingError, Uploads, upload_ids
from switchboard.runtime.accounts import Account, AccountCache
from switchboard.runtime.breaker import Breakers
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import PermanentError, decode_or_reject
from switchboard.runtime.delivery.provider_failures import (
    DeadLetter,
    PauseUntil,
    ProviderPolicy,
    breaker_signal,
    decide,
)
from switchboard.runtime.dlq import dead_letter_msg
from switchboard.runtime.fingerprint import fingerprint, taken_reason
from switchboard.runtime.logging import get_logger

log = get_logger(__name__)
# The provider commands that are not chat sends (SendPulse, Meta CAPI).
ProviderCommand = SendEmail | SendSms | SyncAddressBook | SendConversion
LATE_SLOTS = Counter(
    "switchboard_outbound_late_slots_total", "Slots given up because the send woke too late"
)
SENT = Counter("switchboard_outbound_sent_total", "Messages the providers accepted", ["lane"])
SENT_BACK = Counter(
    "switchboard_outbound_sent_back_total",
    "Conversational commands sent back to the stream: their account held its share here",
)
REPEATS = Counter(
    "switchboard_outbound_repeated_commands_total",
    "Send commands settled by an earlier command with their message_id",
    ["verdict"],
)


async def in_stream(bus: Bus, msg: Msg, seq: int) -> bool:
    """Whether the command at ``seq`` of ``msg``'s stream is still there (not settled)."""
    return await bus.stored(msg.metadata.stream, seq) is not None


class CommandSite(Protocol):
    """What opening a provider command's record needs from its call site."""

    provider: ClassVar[str]
    bus: Bus
    attempts: Attempts
    policy: SendPolicy
    consumer: str


async def open_record(
    site: CommandSite,
    cmd: ProviderCommand,
    env: Envelope,
    msg: Msg,
    name: tuple[str, str],
    recipient: str,
) -> Attempt | None:
    """For the provider commands that are not chat sends, named by (kind, id): the attempt
    record (``<kind>:<id>``) to go on with, or None when the command was settled here by the
    rules of ``attempts.claim`` (done before: its outcome announced again, and acked; a copy
    another stream message owns: acked; another body under the id: dead-lettered and acked).
    The outcome is written with :func:`record_outcome`."""
    kind, ident = name
    first = Attempt(
        message_id=f"{kind}:{ident}",
        workspace_id=env.workspace_id,
        channel=site.provider,
        account=cmd.account,
        recipient=recipient,
        fingerprint=fingerprint(cmd),
        owner=msg.metadata.sequence.stream,
    ).step("queued")
    retention = timedelta(seconds=site.policy.retention)
    decided, record, _ = await claim(
        site.attempts, first, retention, lambda seq: in_stream(site.bus, msg, seq)
    )
    if decided in (Verdict.PROCEED, Verdict.NEW):
        return record
    if decided is Verdict.DONE and record.announced is not None:
        # Done before, but its event (and a failure's DLQ entry) may have been lost to an
        # outage: the record is written beside them. Again; each is stored once.
        await site.bus.publish(record.announced.event(), cause=env)
        if record.status == "failed" and record.owner in (None, msg.metadata.sequence.stream):
            reason = record.reason or "failed"
            await dead_letter_msg(site.bus, msg, reason=reason, consumer=site.consumer)
    if decided is not Verdict.DONE:
        REPEATS.labels(decided.value).inc()
    if decided is Verdict.CONFLICT:
        taken = f"{kind} {ident!r} is taken by a command with another body"
        reason = f"idempotency_conflict: {taken}"
        await dead_letter_msg(site.bus, msg, reason=reason, consumer=site.consumer)
    await msg.ack()
    return None


async def record_outcome(
    site: CommandSite, record: Attempt, event: Message, env: Envelope, msg: Msg
) -> Attempt:
    """Store a provider command's final record with its outcome event, and publish the
    event (``stored_and_announced``); a failure is dead-lettered too. The caller acks."""
    record = record.model_copy(update={"announced": Announcement.of(event)})
    await stored_and_announced(site.attempts, record, site.bus.publish(event, cause=env))
    if record.status == "failed":
        reason = record.reason or "failed"
        await dead_letter_msg(site.bus, msg, reason=reason, consumer=site.consumer)
    return record


@dataclass
class SendPolicy:
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    call_timeout: float = 15.0
    # A send that would leave this late after its slot (a busy process, a GC pause, a new
    # connection's handshake) gives the slot up and takes a new one. Up to it, a send late by
    # more than half the margin holds the next window back instead (``pacing``): a slot
    # given up costs a whole interval, a hold only the excess, and holds in a row merge.
    max_lateness: float = 0.06
    # How long a completed message_id stays taken (the idempotency retention).
    retention: float = 24 * 3600.0

    # The pause after a provider's rate limit that names no wait.
    rate_limit_wait: float = 1.0
    # The pause of an account whose credentials the provider refused, at a time.
    unauthorized_wait: float = 60.0
    # A send scheduled ahead is held by the server at most this long at a time (``schedule``).
    hold_hop: float = HOLD_HOP.total_seconds()
    # Seconds of an account's rate one instance holds in the conversational lane, and that
    # lane's places here (``share``).
    account_hold_s: float = 2.0
    lane_places: int = 512

    @property
    def failures(self) -> ProviderPolicy:
        """The provider-failure policy every outbound call site decides with."""
        return ProviderPolicy(
            self.max_attempts,
            self.backoff_base,
            self.backoff_max,
            self.rate_limit_wait,
            unauthorized_wait_s=self.unauthorized_wait,
        )


class Phase:
    """Where a command is, for a graceful stop: waiting ones go back to the stream."""

    def __init__(self) -> None:
        self.calling = False


@dataclass
class Sender:
    bus: Bus
    accounts: AccountCache
    attempts: Attempts
    limiter: SharedLimiter
    schedulers: Schedulers
    breakers: Breakers
    clients: dict[str, MessagingClient]
    policy: SendPolicy
    campaigns: CampaignHooks | None = None
    schedule: ScheduleChanges | None = None
    uploads: Uploads | None = None  # files named by upload_id are read back from here
    # Which accounts of a campaign's pool can take its sends (None: no moving).
    pool: PoolHealth | None = None
    # The erasures' lines through the lanes (None: no erasure stops a command in them).
    erased: erasure.ErasedSends | None = None
    clock: Callable[[], float] = time.time
    round_trips: RoundTrips = field(default_factory=RoundTrips)
    # Commands arriving together are admitted a few at a time: hundreds of records and
    # events at once would hold the event loop long enough to make the sends due meanwhile
    # late.
    _admitting: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))
    # Sends to one chat wait for the ones their lane received before them (``turns``).
    turns: Turns = field(default_factory=Turns)
    holds: Holds = field(init=False)
    share: AccountShare = field(init=False)

    def __post_init__(self) -> None:
        self.holds = Holds(self.limiter)
        self.share = AccountShare(self.policy.account_hold_s, self.policy.lane_places)

    async def handle(self, msg: Msg, consumer: str, phase: Phase | None = None) -> None:
        """Process one command; it is always settled here (ack, or nak with a delay)."""
        decoded = decode_or_reject(msg)
        cmd = decoded.model
        if not isinstance(cmd, SendMessage):
            raise PermanentError(f"{cmd.name} is not a send command")
        await self.process(cmd, decoded.envelope, msg, consumer, phase or Phase())

    async def process(
        self, cmd: SendMessage, env: Envelope, msg: Msg, consumer: str, phase: Phase
    ) -> None:
        async with self._admitting:
            admitted = await self._admit(cmd, env, msg, consumer)
        if admitted is not None:
            async with self._place(admitted[0], admitted[2]) as placed:
                if placed:
                    await self._send(*admitted, phase)

    async def _admit(
        self, cmd: SendMessage, env: Envelope, msg: Msg, consumer: str
    ) -> tuple[Outcome, Attempt, Account, MessagingClient] | None:
        """Record and announce a command, and check it may go (None: it was settled)."""
        seq = msg.metadata.sequence.stream
        mark = (
            None
            if self.erased is None
            else self.erased.marker_for(env.workspace_id, cmd.channel.value, cmd.recipient, seq)
        )
        first = Attempt(
            message_id=cmd.message_id,
            workspace_id=env.workspace_id,
            channel=cmd.channel.value,
            account=cmd.account,
            recipient=mark or cmd.recipient,
            campaign_id=cmd.campaign_id,
            fingerprint=fingerprint(cmd),  # of the command as sent: a redelivery matches
            owner=seq,
        ).step("queued")
        if mark is not None:
            # In the lanes when its person was erased (``erasure``): from here on it names
            # them by the marker, and fails below as a campaign's erased recipient does.
            cmd = cmd.model_copy(update={"recipient": mark})
        job = Outcome(self.bus, self.attempts, self.campaigns, cmd, env, msg, consumer)
        claimed = await self._claim(first, job)
        if claimed is None:
            return None
        record, created = claimed
        if record.done:
            if record.status == "sent" and record.provider_message_id:
                # Stored as sent, but its events may have been lost to an outage: again.
                await job.announce_sent(record)
            if record.status == "moved" and record.moved_to and record.moved_via:
                # Moved before; its new command or the count may have been lost: again.
                await self._publish_move(job, record)
            if record.status == "failed":
                # Stored as failed, but its event, count or DLQ entry may have been lost to an
                # outage (the record is written beside the event): again, then the ack. An
                # erased recipient's failure was announced by the erasure, naming no one (the
                # command still names them).
                if record.error_code != ERASED:
                    await job.announce_failed(record)
                mine = record.owner in (None, msg.metadata.sequence.stream)  # not a repeat
                await job.settle_failed(record, dead_letter=mine)
                return None
            await msg.ack()  # completed before (a redelivery, or the same id sent twice)
            return None
        if created:
            await job.announce(
                DeliveryQueued(
                    **job.base(), priority=cmd.priority.value, campaign_id=cmd.campaign_id
                )
            )
        now = datetime.fromtimestamp(self.clock(), UTC)  # the times other processes set
        if cmd.expires_at is not None and now >= cmd.expires_at:
            await job.fail(record, "expired before it could be sent", "expired", permanent=True)
            return None
        if cmd.recipient.startswith(erasure.MARK):
            # A campaign's recipient erased before the fan-out reached them, or a command
            # in the lanes at the erasure (``erasure``): failed unsent, so a campaign still
            # counts the position. A record its sender made meanwhile forgets the person too.
            record = erasure.blanked(record, cmd.recipient)
            await job.fail(record, ERASED_REASON, ERASED, permanent=True)
            return None
        if cmd.not_before is not None:
            # A scheduled send may have been moved meanwhile (``schedule``).
            change = (
                None
                if self.schedule is None
                else await self.schedule.get(env.workspace_id, cmd.message_id)
            )
            due = effective_time(cmd.not_before, change)
            if due is not None and now < due:
                # The server holds it until then, for whichever instance is alive.
                if change is not None and self.schedule is not None:
                    # written again with each hold, as the record is: past a hop (days) it
                    # must outlive the sends bucket's ttl too
                    await self.schedule.put(env.workspace_id, cmd.message_id, change)
                send = (env.workspace_id, cmd.message_id)
                hop = timedelta(seconds=self.policy.hold_hop)
                await hold(self.bus, self.attempts, msg, send, due, now, hop)
                return None
        # Another workspace's account is an unknown one: nothing is sent through it.
        account = self.accounts.owned(cmd.channel, cmd.account, env.workspace_id)
        client = self.clients.get(cmd.channel.value)
        if account is None or client is None:
            what = "account" if account is None else "channel"
            await job.fail(
                record,
                f"unknown {what} {cmd.channel.value}/{cmd.account}",
                "unknown_account",
                permanent=True,
            )
            return None
        oversize = too_large(cmd)
        if oversize is not None:  # the provider would refuse it: no call, no retries
            await job.fail(record, oversize.reason, "too_large", permanent=True)
            return None
        if (long := too_long(cmd)) is not None:  # the same, for a command from the bus
            await job.fail(record, long.reason, "too_long", permanent=True)
            return None
        return job, record, account, client

    async def _claim(self, first: Attempt, job: Outcome) -> tuple[Attempt, bool] | None:
        """The record this command goes on with and whether it is new (None: settled here).

        A record already under the id decides (``attempts.claim``): a redelivery goes on; a
        copy of a command that another stream message owns is dropped while that one still
        waits in the stream (``not_before``, a retry), so a repeat after JetStream's
        duplicate window cannot send twice; another body under the id is refused."""
        retention = timedelta(seconds=self.policy.retention)
        decided, record, created = await claim(
            self.attempts,
            first,
            retention,
            lambda seq: in_stream(self.bus, job.msg, seq),
            heir=fired_for(job.msg, first.workspace_id, first.message_id),
        )
        if decided in (Verdict.PROCEED, Verdict.DONE, Verdict.NEW):
            return record, created
        REPEATS.labels(decided.value).inc()
        if decided is Verdict.CONFLICT:
            await job.reject(taken_reason(first.message_id), "idempotency_conflict")
        else:
            await job.msg.ack()  # the first command still waits in the stream: it sends
        return None

    @contextlib.asynccontextmanager
    async def _place(self, job: Outcome, account: Account) -> AsyncIterator[bool]:
        """A place in this instance for the send (True, freed after), or False: its account
        holds its share of the conversational places here already, and the server holds the
        command until the account has room (``share``). A campaign's fan-out is paced by its
        runner: it always has a place."""
        if job.cmd.campaign_id:
            yield True
            return
        key = account_key(account)  # the account's own limit (its recipient's is no matter)
        now = self.clock()
        message_id = job.cmd.message_id
        # An earlier send to the chat was sent back from here and has not gone on: behind it.
        behind = self.turns.behind(job.msg, message_id, now)
        if behind is not None:
            back: float | None = max(behind - now, 0.0) + key.limit.interval
        else:
            back = self.share.take(key.name, key.limit, now)
        if back is not None:
            await self._send_back(job, now, back)
            yield False
            return
        self.turns.gone_on(job.msg, message_id)
        try:
            yield True
        finally:
            self.share.release(key.name)

    async def _send_back(self, job: Outcome, now: float, back: float) -> None:
        """Held by the server for ``back`` seconds, as a send scheduled ahead is (a nak'ed
        command would still keep one of the durable's 20,000 places), keeping its place
        among its chat's sends (``turns``)."""
        SENT_BACK.inc()
        self.turns.sent_back(job.msg, job.cmd.message_id, now + back, now)
        await hold(
            self.bus,
            self.attempts,
            job.msg,
            (job.env.workspace_id, job.cmd.message_id),
            datetime.fromtimestamp(now + back, UTC),
            datetime.fromtimestamp(now, UTC),
            timedelta(seconds=self.policy.hold_hop),
        )

    async def _send(
        self,
        job: Outcome,
        record: Attempt,
        account: Account,
        client: MessagingClient,
        phase: Phase,
    ) -> None:
        cmd, msg = job.cmd, job.msg
        if cmd.campaign_id and not await self._campaign_allows(job, record):
            return
        # Moving a send before its call is safe only when no earlier delivery of the command
        # can have reached the provider: its first delivery. A later one through a user
        # account asks the gateway, which answers from what it sent, or that the account
        # waits (nothing sent: then it moves).
        unsent = msg.metadata.num_delivered == 1
        paused = f"{cmd.channel.value}/{cmd.account} is paused"
        if (
            unsent
            and cmd.campaign_id
            and self.pool is not None
            and self.pool.paused_long(cmd.channel, cmd.account)
            and await self._move(job, record, paused, fail=False)
        ):
            return  # its account waits longer than a campaign does: another one sends it
        if self.uploads is not None and upload_ids(cmd):
            # Uploaded files travel as ids; their bytes join the command for the call only.
            # A user account's send goes to the gateway over the bus, still by id: the
            # gateway reads the bytes from the same store (bytes on the bus would pass
            # NATS's max_payload from 750 kB).
            try:
                if cmd.channel is Channel.MTPROTO:
                    await self.uploads.sizes(job.env.workspace_id, cmd)
                else:
                    cmd = await self.uploads.inline(job.env.workspace_id, cmd)
            except UploadMissingError as exc:
                await job.fail(record, str(exc), "unknown_upload", permanent=True)
                return
            oversize = too_large(cmd)
            if oversize is not None:
                await job.fail(record, oversize.reason, "too_large", permanent=True)
                return
        breaker = self.breakers.get(cmd.channel.value, cmd.account)
        allowed, wait = breaker.allow()
        if not allowed:
            await msg.nak(delay=wait)  # the provider is down for this account: hold on
            return
        try:
            await self.turns.wait(msg)  # the chat's earlier sends first
        except BaseException:
            breaker.release()
            raise
        now = self.clock()
        # (a campaign's send is paced by its runner and never sent back: it has no place)
        behind = None if cmd.campaign_id else self.turns.behind(msg, cmd.message_id, now)
        if behind is not None:  # an earlier send to the chat was sent back meanwhile
            breaker.release()
            interval = account_key(account).limit.interval
            await self._send_back(job, now, max(behind - now, 0.0) + interval)
            return
        limits = send_limits(account, cmd.recipient)
        ticket = Ticket(cmd.priority, limits.recipient, limits.recipient_pause)
        may_move = True
        while True:
            leased = True
            try:
                at = await self._wait_for_slot(cmd, limits, ticket, may_move=may_move)
            except BaseException:
                breaker.release()
                raise
            if at is None:  # its account dropped out of the campaign's pool meanwhile
                if unsent and await self._move(job, record, paused, fail=False):
                    breaker.release()
                    return
                may_move = False
                if unsent or cmd.channel is not Channel.MTPROTO:
                    continue  # no other account can take it: it waits
                # The gateway answers at once, without calling Telegram during the pause: no
                # slot is leased, so none is reported (the window would log a phantom send).
                at, leased = self.clock(), False
            phase.calling = True
            started_at = datetime.now(UTC)
            started = time.perf_counter()
            try:
                sent = await self._call(client, account, cmd, limits, at, leased=leased)
            except SlotMissedError:
                # Nothing went out: a new slot (the recipient's, claimed at `at`, is taken).
                LATE_SLOTS.inc()
                phase.calling = False
                step = self.limiter.spacing(limits.recipient.limit) if limits.recipient else 0
                ticket = Ticket(
                    cmd.priority, limits.recipient, limits.recipient_pause, at + step, ticket.seq
                )
                continue
            except (TimeoutError, ProviderError) as exc:
                err = exc if isinstance(exc, ProviderError) else timed_out()
                breaker.hear(breaker_signal(err.failure), str(err))
                record = record.step("in_flight", at=started_at, attempts=record.attempts + 1)
                await self._on_error(job, record, err, limits)
                return
            break
        record = record.step("in_flight", at=started_at, attempts=record.attempts + 1)
        latency = time.perf_counter() - started
        breaker.success(latency)
        await job.sent(record, sent, latency * 1000)
        SENT.labels(job.consumer).inc()

    async def _call(
        self,
        client: MessagingClient,
        account: Account,
        cmd: SendMessage,
        limits: SendLimits,
        at: float,
        *,
        leased: bool = True,
    ) -> Sent:
        """The provider call, leaving within the slot's window; a send the provider may have
        counted late pushes the later slots of its account and recipient (``pacing``).
        Without ``leased`` (a user account's send asked of the gateway during a pause, which
        answers without calling Telegram) nothing is reported to the window."""
        window = SendWindow(at, at + self.policy.max_lateness, clock=self.clock)
        # Already late waking up (a busy process): hold the next window back before the
        # call, while there is the most time for it; the answer may add to it below.
        early = self.holds.note(limits, at, max(0.0, self.clock() - at)) if leased else 0.0
        heard = False  # an answer came back: the provider counted the send before it
        try:
            async with asyncio.timeout(self.policy.call_timeout + 1):
                with send_window(window):
                    sent = await client.send(account, cmd)
            heard = True
            return sent
        except ProviderError as exc:
            heard = exc.heard
            raise
        finally:
            if not leased:
                pass  # no slot was leased: the window has no place to free or hold
            elif window.left_at is None:  # nothing left (SlotMissedError, or a failure before)
                self.limiter.note_unused(limits.account, [at])
            else:
                answered = self.clock()
                base = self.round_trips.baseline(limits.account.name, answered - window.left_at)
                late = lateness(at, window.left_at, answered, base)
                self.holds.note(limits, at, late, early, answered=heard)

    async def _campaign_allows(self, job: Outcome, record: Attempt) -> bool:
        """Cancelled: fail it (not sent). Paused: hold it until resumed, for a while."""
        hooks, cid = self.campaigns, job.cmd.campaign_id
        if hooks is None or cid is None:
            return True
        for _ in range(6):
            status = hooks.status(job.env.workspace_id, cid)
            if status in ("cancelled", "completed"):
                await job.fail(record, "the campaign was cancelled", CANCELLED, permanent=True)
                return False
            if status != "paused":
                return True
            await hooks.changed(job.env.workspace_id, cid, 5.0)
        await job.msg.nak(delay=5.0)  # still paused: back to the stream for a while
        return False

    async def _wait_for_slot(
        self, cmd: SendMessage, limits: SendLimits, ticket: Ticket, *, may_move: bool = False
    ) -> float | None:
        """This send's slot, from the account's scheduler, once it has come (and no pause
        came up meanwhile); a slot woken up to too late is given up for a new one. None
        (with ``may_move``): a campaign send whose account got paused for longer than a
        campaign waits, to go through another account."""
        scheduler = self.schedulers.get(limits.account, limits.account_pause)
        pauses = self.limiter.pauses
        while True:
            future = scheduler.slot(ticket)
            try:
                got = await self._slot(future, cmd, may_move)
            except BaseException:
                future.cancel()
                raise
            if got is None:
                return None
            at = got
            delay = at - self.clock()
            if delay > 0:
                try:
                    await asyncio.sleep(delay)
                except BaseException:
                    self.limiter.note_unused(limits.account, [at])
                    raise
            now = self.clock()
            paused = 0.0
            if pauses is not None:
                paused = max(
                    pauses.until(pause_key(limits.account_pause)),
                    pauses.until(pause_key(limits.recipient_pause)),
                )
            if paused > now:
                self.limiter.note_unused(limits.account, [at])
                if (
                    may_move
                    and cmd.campaign_id
                    and self.pool is not None
                    and self.pool.paused_long(cmd.channel, cmd.account)
                ):
                    return None
                ticket = Ticket(cmd.priority, limits.recipient, limits.recipient_pause, paused)
                continue
            if now - at > self.policy.max_lateness:
                LATE_SLOTS.inc()
                self.limiter.note_unused(limits.account, [at])
                # The recipient's slot at `at` is taken: it is ready one interval later.
                step = self.limiter.spacing(limits.recipient.limit) if limits.recipient else 0
                ticket = Ticket(
                    cmd.priority, limits.recipient, limits.recipient_pause, at + step, ticket.seq
                )
                continue
            return at

    async def _slot(
        self, future: asyncio.Future[float], cmd: SendMessage, may_move: bool
    ) -> float | None:
        """The scheduler's slot; None when, waiting for it, the campaign send's account got
        paused longer than a campaign waits (the scheduler holds slots through a pause)."""
        if not (may_move and cmd.campaign_id and self.pool is not None):
            return await future
        while True:
            done, _ = await asyncio.wait({future}, timeout=1.0)
            if done:
                return future.result()
            if self.pool.paused_long(cmd.channel, cmd.account):
                future.cancel()
                return None

    async def _on_error(
        self, job: Outcome, record: Attempt, err: ProviderError, limits: SendLimits
    ) -> None:
        outcome = decide(err.as_failure(), record.attempts, self.policy.failures)
        if isinstance(outcome, DeadLetter):
            answered = bool(err.raw.get("answered")) or job.msg.metadata.num_delivered == 1
            if (
                outcome.permanent
                and err.code == UNUSABLE
                and answered
                and await self._move(job, record, str(err), fail=False)
            ):
                return  # the account cannot send at all: another one of the pool does
            await job.fail(record, outcome.reason, err.code, permanent=outcome.permanent)
            return
        if isinstance(outcome, PauseUntil):
            wait = outcome.delay_s
            if err.scope is Scope.RECIPIENT and limits.recipient is not None:
                name, key = limits.recipient_pause, limits.recipient
            else:
                name, key = limits.account_pause, limits.account
            await self.limiter.pause(name, wait, key)
            # The account and the code, never the recipient's key or the provider's reason
            # (either can name the person: a WhatsApp pause key holds the phone number).
            log.warning(
                "paused for every instance at the provider's word",
                account=limits.account_pause,
                recipient_only=name != limits.account_pause,
                seconds=wait,
                code=err.code,
            )
            patience = self.pool.patience_s if self.pool is not None else None
            if (
                name == limits.account_pause
                and patience is not None
                and wait > patience
                and await self._move(job, record, str(err), fail=False)
            ):
                return  # nothing was sent; the account waits too long for a campaign
        record = record.model_copy(update={"attempts": outcome.attempts})
        await job.again(record, err.reason, err.code, outcome.delay_s)

    async def _move(self, job: Outcome, record: Attempt, reason: str, *, fail: bool = True) -> bool:
        """Move a campaign send that was not made to another account of its pool, under a
        new message id (``campaigns.pool``): the record says where first, then the new
        command and the campaign's count, then this one is acked. False when it cannot
        move (not a campaign send, no other usable account); with ``fail`` it fails then."""
        cmd, hooks, health = job.cmd, self.campaigns, self.pool
        ws, cid = job.env.workspace_id, cmd.campaign_id
        start = hooks.definition(ws, cid) if hooks is not None and cid else None
        target = None
        if start is not None and health is not None:
            primary = start.channel
            was = tried(cmd.message_id, member_key(cmd.channel, cmd.account, primary))
            target = next_member(
                members(start), primary, cmd.message_id, was, lambda m: health.usable(ws, m)
            )
        if target is None or start is None:
            if fail:
                reason = f"{reason}; no other account of the campaign's pool can send it"
                await job.fail(record, reason, "no_account_left", permanent=True)
                return True
            return False
        new_id = moved_id(cmd.message_id, target.key(start.channel))
        where = f"{target.channel.value}/{target.account}"
        record = record.step(
            "moved", reason=f"{reason}; moved to {where}", moved_to=new_id, moved_via=where
        )
        await self.attempts.put(record)
        await self._publish_move(job, record)
        await job.announce(
            DeliveryFailed(
                **job.base(),
                reason=f"not sent: {reason}; sent through {where} as {new_id}",
                error_code=MOVED,
                permanent=True,
                attempts=record.attempts,
                campaign_id=cid,
            )
        )
        await job.msg.ack()
        log.info("campaign send moved", message_id=cmd.message_id, to=where)
        return True

    async def _publish_move(self, job: Outcome, record: Attempt) -> None:
        """The moved send's command (its id names its account: publishing it again is
        dropped as a duplicate), then the campaign's count of moved sends."""
        cmd, hooks = job.cmd, self.campaigns
        assert record.moved_to is not None
        assert record.moved_via is not None
        channel, _, account = record.moved_via.partition("/")
        moved = type(cmd).model_validate(
            {**cmd.model_dump(), "message_id": record.moved_to, "channel": channel,
             "account": account}
        )  # fmt: skip
        await self.bus.publish(moved, cause=job.env)
        if hooks is not None and cmd.campaign_id:
            await hooks.record_moved(job.env.workspace_id, cmd.campaign_id, cmd.message_id)
