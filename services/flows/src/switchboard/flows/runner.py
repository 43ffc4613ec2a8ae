"""The handlers: a conversation event or a due timer becomes recorded decisions and their
effects, exactly once.

For each input: read the conversation's last record, plan (pure), append with the expected
last sequence of the conversation's subjects, then publish the effects and let the worker
acknowledge. A crash anywhere before the acknowledgement redelivers the input; if its
decision was already recorded the same effects are published again under the same ids
(dropped as duplicates downstream), so nothing is sent twice and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg

from switchboard.events import Envelope
from switchboard.events.catalog.conv import (
    CallbackReceived,
    ContactStatus,
    ContactStatusChanged,
    MessageReceived,
    TextContent,
)
from switchboard.events.catalog.crm import ContactUpdated, LeadStageChanged
from switchboard.events.catalog.flows import (
    FireSchedule,
    FireTimer,
    FlowConversation,
    RunRecorded,
    RunStatus,
    StartRuns,
)
from switchboard.flows import metrics, runs
from switchboard.flows.effects import HANDLING, Effects, keep_alive
from switchboard.flows.engine import Input, uses_contact
from switchboard.flows.library import FlowLibrary
from switchboard.flows.schedules import ScheduleKeeper, segment_request, still_due
from switchboard.flows.session_lookup import SessionLookup
from switchboard.flows.sessions import (
    STREAM,
    consumed,
    legacy_session_id,
    plan,
    run_filter,
    session_filter,
    session_id,
)
from switchboard.flows.triggers import event_start
from switchboard.runtime import pii
from switchboard.runtime.aggregates import ConflictError, append_expecting, last_stored
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import decode_or_reject
from switchboard.runtime.logging import get_logger
from switchboard.runtime.schedules import HOP
from switchboard.runtime.subscribers import Subscription, durable

log = get_logger(__name__)

# Where each consumer reads is the topology's (switchboard.events.topology, FLOWS): short ack
# waits there, as a decision takes milliseconds and what a killed instance had fetched comes
# back to the others after ack_wait (a redelivery of a decided input only republishes its
# effects under the same ids, so an early one costs nothing).
# Pipelined: a run's webhook call holds its handler up to 8 s, and must not hold the durable
# (each conversation is handled one input at a time: ``_serialized``).
CONVERSATIONS = Subscription(durable("flows", "flows-conversations"), pipelined=True)
# CRM events that start flows (lead stage changed, tag added) in the contact's conversations.
CRM_EVENTS = Subscription(durable("flows", "flows-crm-events"), pipelined=True)
TIMERS = Subscription(durable("flows", "flows-timers"), pipelined=True)
SUBSCRIPTIONS = (CONVERSATIONS, CRM_EVENTS, TIMERS)
RETRIES = 10
# A button press is always an answer to the bot. One that no run takes may have overtaken the
# input that started its run on another instance: it is offered again shortly, a few times.
BUTTON_DELIVERIES = 3
BUTTON_RETRY_S = 0.5


def conversation_input(msg: Msg) -> tuple[Envelope, FlowConversation, Input] | None:
    """The input a conversation event carries (None: not one flows react to)."""
    decoded = decode_or_reject(msg)
    ev, env = decoded.model, decoded.envelope
    if isinstance(ev, MessageReceived):
        if ev.sender.is_bot:
            return None
        text = ev.content.text if isinstance(ev.content, TextContent) else None
        conv = _conversation(ev)
        referral = (ev.referral.source, ev.referral.campaign) if ev.referral else None
        inp = Input(kind="text", id=env.id, at=ev.received_at, text=text, referral=referral)
        return env, conv, inp
    if isinstance(ev, ContactStatusChanged):
        if ev.status is not ContactStatus.CONVERSATION_STARTED:
            return None
        conv = _conversation(ev)
        context = ev.referral.campaign if ev.referral else None
        inp = Input(kind="event", id=env.id, at=ev.at, event="conversation_started", data=context)
        return env, conv, inp
    if isinstance(ev, CallbackReceived):
        conv = _conversation(ev)
        inp = Input(
            kind="button", id=env.id, at=ev.received_at, data=ev.data, callback_id=ev.callback_id
        )
        return env, conv, inp
    return None


def _conversation(
    ev: MessageReceived | ContactStatusChanged | CallbackReceived,
) -> FlowConversation:
    """The conversation an event happened in. Its sender's ``first_name`` is what
    ``{{ contact.first_name }}`` says: WhatsApp and Viber give one display name, which
    stands in for it (a greeting said "Hi !" there)."""
    return FlowConversation(
        channel=ev.channel,
        account=ev.account,
        chat_id=ev.chat.id,
        sender_id=ev.sender.id,
        first_name=ev.sender.first_name or ev.sender.display_name,
        username=ev.sender.username,
    )


def session_ids(workspace: str, conv: FlowConversation) -> tuple[str, str]:
    """A conversation's keyed session id and the legacy one it may be recorded under."""
    key = (workspace, conv.channel, conv.account, conv.chat_id)
    return session_id(*key), legacy_session_id(*key)


def scheduled_input(
    session: str, legacy: str, request_id: str, flow_id: str, at: datetime
) -> Input:
    """The input that starts ``flow_id`` by schedule in a conversation: its id is the
    request's and the conversation's, so a redelivered request starts nothing twice (nor
    what an earlier version started under the conversation's legacy session id)."""
    return Input(
        kind="event",
        id=f"{request_id}:{session}",
        at=at,
        event="schedule",
        data=flow_id,
        known_as=(f"{request_id}:{legacy}",),
    )


def last_per_conversation(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest run of each conversation (by stream sequence), in a stable order: one
    conversation's runs can be under two session ids (its legacy one, then its keyed one)."""
    last: dict[tuple[str, str, str], dict[str, Any]] = {}
    for view in views:
        conv = view["conversation"]
        key = (conv["channel"], conv["account"], conv["chat_id"])
        known = last.get(key)
        if known is None or known["version"] < view["version"]:
            last[key] = view
    return [last[key] for key in sorted(last)]


def crm_trigger(ev: object) -> tuple[str, list[tuple[str, str]]] | None:
    """The contact and the trigger events (``lead_stage``/``tag_added`` with their value)
    a CRM event carries (None: none)."""
    if isinstance(ev, LeadStageChanged):
        return ev.contact_id, [("lead_stage", ev.to_stage)]
    if isinstance(ev, ContactUpdated) and ev.tags_added:
        return ev.contact_id, [("tag_added", tag) for tag in ev.tags_added]
    return None


class Runner:
    """Applies inputs to a conversation's runs, one input of a conversation at a time."""

    def __init__(
        self,
        bus: Bus,
        library: FlowLibrary,
        effects: Effects,
        schedules: ScheduleKeeper | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bus, self.library, self.effects = bus, library, effects
        self.sessions = SessionLookup(bus)
        self.schedules = schedules
        # Timers are due on the server's clock (it fires them): lateness and the time of a
        # release are read on it too (``Runtime.clock`` in the service).
        self.now = now
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def _serialized(self, session: str) -> AsyncIterator[None]:
        # Within an instance, one conversation's inputs go in delivery order (asyncio locks
        # are FIFO); across instances the expected-sequence append keeps them one at a time.
        # The lock stays while anyone holds or waits for it (counted), so an input arriving
        # just as another is handed the lock queues behind it instead of getting a new one.
        lock, users = self._locks.get(session, (asyncio.Lock(), 0))
        self._locks[session] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[session]
            if users == 1:
                del self._locks[session]
            else:
                self._locks[session] = (lock, users - 1)

    async def on_conversation(self, msg: Msg) -> bool:
        await pii.open_messages([msg])
        found = conversation_input(msg)
        if found is None or pii.is_erased(found[1].sender_id):
            return False  # not an input, or an old one of a person erased since
        env, conv, inp = found
        await self.library.caught_up.wait()
        session, legacy = session_ids(env.workspace_id, conv)
        HANDLING.set(msg)
        async with self._serialized(session):
            taken = await self.handle(session, env, inp, conv, legacy)
        if not taken and inp.kind == "button" and msg.metadata.num_delivered < BUTTON_DELIVERIES:
            await msg.nak(delay=BUTTON_RETRY_S)
            return True  # settled here
        return False

    async def on_crm(self, msg: Msg) -> None:
        """A CRM event starts the flows it triggers in each conversation of its contact
        (one that runs a flow already is left alone)."""
        decoded = decode_or_reject(msg)
        env = decoded.envelope
        found = crm_trigger(decoded.model)
        if found is None:
            return
        contact_id, events = found
        await self.library.caught_up.wait()
        # Only flows published before the event: a CRM history older than the flow (read
        # when this consumer first starts on a long stream) starts nothing.
        published = [
            p
            for p in self.library.published(env.workspace_id)
            if p.since is not None and p.since <= env.time
        ]
        wanted = [(e, d) for e, d in events if event_start(published, e, d) is not None]
        if not wanted:
            return  # no flow of the workspace starts on it: nothing to read
        HANDLING.set(msg)
        for conv in await self.effects.conversations_of(contact_id):
            session, legacy = session_ids(env.workspace_id, conv)
            for event, data in wanted:
                inp = Input(
                    kind="event",
                    id=f"{env.id}:{event}:{data}",
                    at=env.time,
                    event=event,
                    data=data,
                )
                async with self._serialized(session):
                    await self.handle(session, env, inp, conv, legacy)

    async def on_timer(self, msg: Msg) -> None:
        decoded = decode_or_reject(msg)
        timer, env = decoded.model, decoded.envelope
        if isinstance(timer, FireSchedule):
            if HOP in (msg.headers or {}):  # held short of its time (``ScheduleKeeper``)
                await self._hold_again(timer, env)
                return
            HANDLING.set(msg)
            async with keep_alive():
                await self.on_schedule(timer, env)
            return
        if isinstance(timer, StartRuns):
            HANDLING.set(msg)
            async with keep_alive():
                await self.on_start_runs(timer, env)
            return
        if not isinstance(timer, FireTimer):
            return
        await self.library.caught_up.wait()
        late = (self.now() - timer.due_at).total_seconds()
        metrics.TIMER_LATENESS.observe(max(late, 0.0))
        inp = Input(
            kind="timer", id=f"timer:{timer.timer_id}", at=timer.due_at, timer_id=timer.timer_id
        )
        HANDLING.set(msg)
        async with self._serialized(timer.session):
            await self.handle(timer.session, env, inp, None)

    async def on_schedule(self, fire: FireSchedule, env: Envelope) -> None:
        """A schedule trigger fired: start its flow in every conversation of the workspace
        that flows has talked with and that runs no flow (scope is checked by the plan),
        then keep the trigger's next fire pending."""
        await self.library.caught_up.wait()
        await self.library.sync()
        ws = env.workspace_id
        published = self.library.published(ws)
        if not still_due(fire, published):
            return  # archived or republished since: that revision's schedule is void
        request = segment_request(fire, published)
        if request is not None:
            # The CRM expands the segment and hands its conversations back (flows.start_runs).
            await self.bus.publish(request, cause=env)
        else:
            await self._start_in_known(fire, env)
        if self.schedules is not None:
            await self.schedules.keep(ws, published)

    async def _hold_again(self, fire: FireSchedule, env: Envelope) -> None:
        """A trigger's schedule fired at a hop: hold it on while its revision is published."""
        await self.library.caught_up.wait()
        await self.library.sync()
        if self.schedules is not None and still_due(fire, self.library.published(env.workspace_id)):
            await self.schedules.hold(fire, env.workspace_id)

    async def _start_in_known(self, fire: FireSchedule, env: Envelope) -> None:
        """Start a fired flow in each conversation flows has talked with that runs none."""
        views = await runs.latest_runs(self.bus, env.workspace_id, None, limit=1_000_000)
        for view in last_per_conversation(views):
            if view["status"] != RunStatus.ENDED.value:
                continue
            conv = FlowConversation.model_validate(view["conversation"])
            await self._start_scheduled(
                env, conv, fire.deterministic_id(), fire.flow_id, fire.due_at
            )

    async def on_start_runs(self, batch: StartRuns, env: Envelope) -> None:
        """Start the flow in each conversation of a segment batch the CRM sent; one that runs
        a flow is left alone (the plan), a redelivered batch starts nothing twice (the input
        id is the request's and the conversation's)."""
        await self.library.caught_up.wait()
        for conv in batch.conversations:
            await self._start_scheduled(env, conv, batch.request_id, batch.flow_id, env.time)

    async def _start_scheduled(
        self,
        env: Envelope,
        conv: FlowConversation,
        request_id: str,
        flow_id: str,
        at: datetime,
    ) -> None:
        """Start a flow by schedule in one conversation (unless it runs one)."""
        session, legacy = session_ids(env.workspace_id, conv)
        inp = scheduled_input(session, legacy, request_id, flow_id, at)
        async with self._serialized(session):
            await self.handle(session, env, inp, conv, legacy)

    async def release(self, run_id: str, workspace: str) -> bool | None:
        """A person hands a handed-off run back: it continues after its hand-off step.
        None: no such run; False: the run is not (or no longer) with a person."""
        last = await last_stored(self.bus, STREAM, run_filter(run_id))
        if last is None or last.decoded.envelope.workspace_id != workspace:
            return None
        rec = last.decoded.model
        assert isinstance(rec, RunRecorded)
        if rec.status is not RunStatus.HANDED_OFF:
            return False
        inp = Input(kind="release", id=f"release:{run_id}:{rec.decision}", at=self.now())
        async with self._serialized(rec.session):
            return await self.handle(rec.session, last.decoded.envelope, inp, None)

    async def handle(
        self,
        session: str,
        cause: Envelope,
        inp: Input,
        conv: FlowConversation | None,
        legacy: str | None = None,
    ) -> bool:
        """Apply one input to the conversation keyed ``session`` (or recorded under its
        ``legacy`` id: ``sessions.resolve``); False when nothing took it."""
        workspace = cause.workspace_id
        for _ in range(RETRIES):
            found = await self.sessions.find(session, legacy)
            current, where = found.current, found.session
            rec = current.decoded.model if current else None
            assert rec is None or isinstance(rec, RunRecorded)
            if rec is not None and pii.is_erased(rec.conversation.sender_id):
                # The customer was erased (their key shredded): nothing of that run is left
                # to decide on, nor anyone to send to. Its timers find nothing; a message
                # they write after it starts afresh, as from someone new.
                rec = None
            if rec is not None and consumed(inp, (rec.input_id, *rec.recent_inputs)):
                # Consumed, its effects maybe not carried out (nor those of the webhook results
                # that followed it, which have no delivery of their own): carry out the last
                # decision's again, under the same ids.
                await self._carry_out(session, legacy, rec, cause)
                return True
            conversation = conv or (rec.conversation if rec else None)
            if conversation is None:
                return False  # a timer of a conversation with no runs: nothing to do
            active_doc = None
            if rec is not None and rec.status is not RunStatus.ENDED:
                active_doc = await self.library.document(rec.flow_id, rec.revision, workspace)
            records: list[RunRecorded] = []
            for _ in range(2):
                seen = self.library.seen
                published = self.library.published(workspace)
                docs = [active_doc] if active_doc else []
                facts = None
                if any(uses_contact(d) for d in [*docs, *(p.doc for p in published)]):
                    facts = await self.effects.facts_of(conversation, workspace)
                records = plan(
                    session=where,
                    current=rec,
                    active_doc=active_doc,
                    published=published,
                    inp=inp,
                    conversation=conversation,
                    facts=facts,
                )
                # Nothing takes it: maybe a flow published a moment ago, not followed yet.
                if records:
                    break
                await self.library.sync()
                if self.library.seen == seen:
                    break
            if not records:
                return False
            expected = found.expected
            try:
                for record in records:
                    expected = await append_expecting(
                        self.bus,
                        await pii.seal_model(pii.installed(), workspace, record),
                        session_filter(where),
                        expected,
                        aggregate=where,
                        cause=cause,
                        workspace_id=workspace,
                    )
            except ConflictError:
                metrics.CONFLICTS.inc()
                continue  # another instance moved this conversation: decide again on its state
            final = records[-1]
            metrics.observe(final)
            await self._carry_out(session, legacy, final, cause)
            return True
        raise RuntimeError(f"conversation {session} kept changing; will retry")

    async def _carry_out(
        self, session: str, legacy: str | None, rec: RunRecorded, cause: Envelope
    ) -> None:
        """Publish a recorded decision's effects, then decide on the results they produced
        (a webhook step's answer) as inputs of their own, in the same conversation."""
        for follow in await self.effects.apply(rec, cause):
            await self.handle(session, cause, follow, None, legacy)
