"""Each service's durable consumers, declared once and run as FastStream subscribers.

Where a consumer reads (stream, filter subjects, ack wait, in-flight cap) and what handles
and decides it is the catalog's :class:`~switchboard.events.topology.Durable` (the catalog
may not import services, so it is the single source and the services build from it). A
:class:`Subscription` adds how the service works through it (batch, concurrency, retries)
and names the durable by its topology entry, so nothing is copied by hand:

* :func:`register` puts a JetStream pull subscriber on a FastStream ``NatsRouter``, whose
  handler settles every message through ``consumer.handle_delivery`` (the one failure
  policy: ack, nak with backoff, DLQ);
* :func:`serve` (:func:`spawn` from a service's ``start``) runs the router on a
  :class:`BusBroker` that shares the service's bus connection, until the runtime stops
  (in-flight batches finish first), and creates again a durable deleted under it;
* :func:`asyncapi` documents the same subscribers, and what the service sends
  (``docs/generate_asyncapi.py`` writes ``docs/asyncapi/<service>.json``).

A hot path may keep the runtime's own reader behind the same declaration (``reader``), where
``bench/bench_subscribers.py`` shows FastStream measurably slower (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, NatsRouter, PullSub
from faststream.specification import AsyncAPI
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from switchboard.events.envelope import H_WORKSPACE
from switchboard.events.registry import all_models
from switchboard.events.schemas import subject_pattern
from switchboard.events.streams import subject_matches
from switchboard.events.topology import SERVICES, Durable, ServiceTopology
from switchboard.runtime.bus import Bus
from switchboard.runtime.consumer import ConsumerSpec, Handler, PullWorker, handle_delivery
from switchboard.runtime.errors import SwitchboardRuntimeError
from switchboard.runtime.failures import Outcome, PoisonBudget, Retry
from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import pause
from switchboard.runtime.service import Runtime
from switchboard.runtime.tracing import consume_span

log = get_logger(__name__)

__all__ = [
    "BusBroker",
    "Subscription",
    "UnknownDurableError",
    "asyncapi",
    "declared",
    "durable",
    "register",
    "serve",
    "spawn",
]

# How long a fetch waits for a batch to fill before handing over what came (and how long a
# stop waits for the fetch in progress): short, as PullWorker's was.
FETCH_TIMEOUT_S = 1.0
_VERSION = re.compile(r"v[0-9]+")
# How much later than the one before it each message of a thing is due again when the one
# before goes back for a retry (``_Settle._in_order``): their order in the redeliveries.
REQUEUE_STEP_S = 0.05
# How often a running service checks that its durables still exist.
DURABLE_CHECK_S = 2.0


class UnknownDurableError(SwitchboardRuntimeError, LookupError):
    """A service named a durable its topology does not declare (a typo, or a topology entry
    missing: add it to switchboard.events.topology and run ``just schemas``)."""


def topology(service: str) -> ServiceTopology:
    """The catalog's declaration of ``service``."""
    for svc in SERVICES:
        if svc.name == service:
            return svc
    raise UnknownDurableError(f"no service {service!r} in switchboard.events.topology")


def declared(service: str) -> tuple[Subscription, ...]:
    """The subscriptions ``service`` declares: the ``SUBSCRIPTIONS`` of the modules its
    topology names (``declared_in``), the one list the generators and checks read."""
    found: list[Subscription] = []
    for module in topology(service).declared_in:
        found.extend(importlib.import_module(module).SUBSCRIPTIONS)
    return tuple(found)


def durable(service: str, name: str) -> Durable:
    """The durable ``name`` that the topology declares for ``service``."""
    for d in topology(service).durables:
        if d.name == name:
            return d
    raise UnknownDurableError(f"{service}: no durable {name!r} in switchboard.events.topology")


# What runs a subscription: FastStream's pull subscriber (:func:`serve`), or for a hot path
# the runtime's own reader behind the same declaration, with the benchmark that justifies it
# (docs/benchmarks.md): ``batch_pull`` is ``consumer.PullWorker``, ``continuous_pull`` an
# outbound lane on ``delivery.pull.ContinuousPull``.
Reader = Literal["faststream", "batch_pull", "continuous_pull"]


@dataclass(frozen=True, slots=True)
class Subscription:
    """One durable consumer of a service: where it reads comes from the topology, how the
    service works through it is said here.

    ``max_failures`` is a message's budget of content failures before the DLQ (the server
    redelivers without limit: an outage must not use up a message); an infrastructure
    failure waits from ``infra_backoff_s`` doubling up to ``infra_backoff_cap_s``.
    ``pipelined``: take new messages while others are in hand, instead of after a whole
    fetched batch is done; for handlers that keep their own per-key order (flows' runs, one
    conversation at a time). ``ordered``: messages about one thing (``about``: a lead, a
    contact) are handled one after another in the stream's order, the others at once (CRM
    commands: a lead's creation and its moves published together)."""

    durable: Durable
    reader: Reader = "faststream"
    pipelined: bool = False
    ordered: bool = False
    batch: int = 64
    concurrency: int = 16
    max_failures: int = 5
    backoff_s: tuple[float, ...] = (0.5, 2.0, 5.0, 15.0)
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    infra_backoff_s: float = 0.5
    infra_backoff_cap_s: float = 15.0

    @property
    def spec(self) -> ConsumerSpec:
        """The consumer as the failure policy and the bus see it."""
        d = self.durable
        return ConsumerSpec(
            stream=d.stream,
            durable=d.name,
            filter_subjects=d.filter_subjects,
            max_deliver=self.max_failures,
            ack_wait_s=float(d.ack_wait_s),
            backoff_s=self.backoff_s,
            batch=self.batch,
            max_ack_pending=d.max_ack_pending,
            deliver_policy=self.deliver_policy,
            infra_backoff_s=self.infra_backoff_s,
            infra_backoff_cap_s=self.infra_backoff_cap_s,
        )


@dataclass
class _Thing:
    """The messages about one thing in hand here: one at a time, in the order they came
    (``asyncio.Lock`` wakes its waiters first come, first served); after one went back for
    a retry, those waiting behind it follow it back."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0
    retry_s: float | None = None
    followed: int = 0


@dataclass
class _Settle:
    """A subscriber's FastStream handler: the delivered message through the service's
    handler under the failure policy, at most ``concurrency`` at a time; with ``ordered``,
    one at a time per thing (``about``)."""

    bus: Bus | None
    spec: ConsumerSpec
    handler: Handler
    sem: asyncio.Semaphore
    ordered: bool = False
    budget: PoisonBudget = field(default_factory=PoisonBudget)
    things: dict[tuple[str, ...], _Thing] = field(default_factory=dict)

    async def __call__(self, msg: Msg) -> Outcome | None:
        if self.bus is None:  # a router built only to be documented
            raise RuntimeError(f"{self.spec.durable}: registered without a bus")
        if self.ordered:
            return await self._in_order(msg)
        async with self.sem:
            return await handle_delivery(self.bus, msg, self.spec, self.budget, self._traced)

    async def _in_order(self, msg: Msg) -> Outcome | None:
        """One thing's messages one after another, in the order their tasks started (the
        fetched batch's, the stream's: nothing is awaited before the lock is asked for). A
        message put back for a retry takes the ones waiting behind it back too, each due a
        step later, so they still come after it (applied meanwhile, a lead's moves found no
        lead while its creation waited out an outage, and were rejected for good)."""
        key = about(msg)
        thing = self.things.setdefault(key, _Thing())
        thing.waiting += 1
        try:
            async with thing.lock:
                if thing.retry_s is not None:
                    thing.followed += 1
                    with contextlib.suppress(Exception):  # unsettled, it comes back anyway
                        await msg.nak(delay=thing.retry_s + thing.followed * REQUEUE_STEP_S)
                    return None
                async with self.sem:
                    assert self.bus is not None
                    outcome = await handle_delivery(
                        self.bus, msg, self.spec, self.budget, self._traced
                    )
                if isinstance(outcome, Retry):
                    thing.retry_s = outcome.delay_s
                return outcome
        finally:
            thing.waiting -= 1
            if thing.waiting == 0:
                del self.things[key]

    async def _traced(self, msg: Msg) -> bool | None:
        with consume_span(
            f"consume {self.spec.durable}", msg.headers, **{"messaging.destination": msg.subject}
        ):
            return await self.handler(msg)


def about(msg: Msg) -> tuple[str, ...]:
    """What a message is about: its workspace and its subject's tokens after the version
    (``cmd.crm.change_lead_stage.v1.<lead_id>``: the lead), as the codec routes them."""
    tokens = msg.subject.split(".")
    at = next((i for i, t in enumerate(tokens) if _VERSION.fullmatch(t)), len(tokens))
    return ((msg.headers or {}).get(H_WORKSPACE, ""), *tokens[at + 1 :])


async def _raw(message: NatsMessage) -> Msg:
    """The body FastStream hands a handler: the delivered message itself (its headers,
    reply subject and JetStream metadata are what the failure policy needs)."""
    return message.raw_message


def register(router: NatsRouter, sub: Subscription, handler: Handler, bus: Bus | None) -> None:
    """Put ``sub`` on ``router`` as a JetStream pull subscriber handled by ``handler``.

    Acks are manual (``handle_delivery`` settles each message by the failure policy); the
    stream is never declared (streams are provisioned from the catalog, or by NACK).
    """
    spec = sub.spec
    settle = _Settle(bus, spec, handler, asyncio.Semaphore(sub.concurrency), sub.ordered)

    # The handler takes the delivered nats-py message as its one, unannotated argument
    # (``_raw``): nothing for FastDepends to inject or validate, which cost ~0.3 ms a
    # message (a context lookup run in a worker thread; bench/bench_subscribers.py).
    async def consume(msg):  # type: ignore[no-untyped-def]
        await settle(msg)

    # The operation's name in the AsyncAPI document, stable across runs.
    consume.__name__ = consume.__qualname__ = spec.durable.replace("-", "_")
    consume.__doc__ = sub.durable.description
    subscriber = router.subscriber(
        config=spec.config(),
        durable=spec.durable,
        stream=JStream(spec.stream, declare=False),
        pull_sub=PullSub(spec.batch, timeout=FETCH_TIMEOUT_S),
        # FastStream's plain pull subscriber handles a fetched batch as one task group and
        # fetches again only once every message of it is done: one slow handler (a flow's
        # webhook call, up to 8 s) held the whole durable, every workspace's messages with
        # it. With workers it queues what it fetched to ``concurrency`` handlers and goes on.
        max_workers=sub.concurrency if sub.pipelined else None,
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw,
        title=spec.durable,
        description=sub.durable.description,
    )
    subscriber(consume)


def router(subscriptions: Mapping[Subscription, Handler], bus: Bus | None = None) -> NatsRouter:
    """A router with one pull subscriber per subscription."""
    r = NatsRouter()
    for sub, handler in subscriptions.items():
        register(r, sub, handler, bus)
    return r


class BusBroker(NatsBroker):
    """A FastStream broker on the service's own bus connection: one connection per process,
    whose reconnects, loss and drain the :class:`Bus` already governs (the broker never
    closes it)."""

    def __init__(self, bus: Bus, **kwargs: Any) -> None:
        # No FastDepends: handlers take the delivered message as it is (``_raw``), and its
        # injection machinery cost ~0.2 ms a message (bench/bench_subscribers.py).
        super().__init__(apply_types=False, **kwargs)
        self._bus = bus

    async def _connect(self) -> Client:
        self.config.connect(self._bus.nc)
        return self._bus.nc

    async def stop(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        self._connection = None  # not ours to drain: the runtime drains the bus last
        await super().stop(exc_type, exc_val, exc_tb)


async def ensure_durables(bus: Bus, subscriptions: Sequence[Subscription]) -> None:
    """Create or update each durable as declared (nats-py's subscribe only creates a missing
    one, so a changed declaration would otherwise never reach the server)."""
    for sub in subscriptions:
        await bus.js.add_consumer(sub.durable.stream, sub.spec.config())


async def serve(
    bus: Bus,
    subscriptions: Mapping[Subscription, Handler],
    stop: asyncio.Event,
    *,
    grace_s: float = 15.0,
) -> None:
    """Consume ``subscriptions`` through FastStream until ``stop`` is set, then stop taking
    messages and let the batches in flight finish (up to ``grace_s``)."""
    raw = [s.durable.name for s in subscriptions if s.reader != "faststream"]
    if raw:
        raise ValueError(f"declared for the runtime's own reader, not FastStream: {raw}")
    await ensure_durables(bus, list(subscriptions))
    broker = BusBroker(bus, graceful_timeout=grace_s, logger=None)
    broker.include_router(router(subscriptions, bus))
    try:
        await broker.start()
        await _keep_durables(bus, list(subscriptions), stop)
    finally:
        with contextlib.suppress(Exception):
            await broker.stop()


async def _keep_durables(
    bus: Bus, subscriptions: Sequence[Subscription], stop: asyncio.Event
) -> None:
    """Until ``stop``: create again a durable that went away (deleted by an operator or a
    NACK re-sync). FastStream's fetch loop keeps asking for it by name, and reads on once it
    exists; it never creates it itself."""
    while not stop.is_set():
        await pause(stop, DURABLE_CHECK_S)
        if stop.is_set():
            return
        for sub in subscriptions:
            try:
                await bus.js.consumer_info(sub.durable.stream, sub.durable.name)
            except NotFoundError:
                log.warning("durable gone; creating it again", consumer=sub.durable.name)
                with contextlib.suppress(Exception):
                    await bus.js.add_consumer(sub.durable.stream, sub.spec.config())
            except Exception as exc:  # the bus is away: asked again next time
                log.debug("durable check failed", consumer=sub.durable.name, error=repr(exc))


def spawn(rt: Runtime, name: str, subscriptions: Mapping[Subscription, Handler]) -> None:
    """Serve ``subscriptions`` as the runtime's workers, each on the reader it declares, all
    stopped with it. FastStream's (worker ``name``) give in-flight batches three quarters of
    the shutdown grace (the bus is drained after); a ``batch_pull`` one runs
    ``consumer.PullWorker`` with the subscription's concurrency (worker: its durable's name),
    which lets the messages it is handling finish. ``continuous_pull`` lanes are the
    outbound's own."""
    grace = rt.settings.shutdown_grace_s * 0.75
    faststream = {s: h for s, h in subscriptions.items() if s.reader == "faststream"}
    for sub, handler in subscriptions.items():
        if sub.reader == "batch_pull":
            worker = PullWorker(
                rt.bus, sub.spec, handler, stop=rt.stop, concurrency=sub.concurrency
            )
            rt.spawn(sub.durable.name, worker.run)
        elif sub.reader != "faststream":
            raise ValueError(f"{sub.durable.name}: the {sub.reader} reader is not spawned here")

    async def run() -> None:
        await serve(rt.bus, faststream, rt.stop, grace_s=grace)

    if faststream:
        rt.spawn(name, run)


async def _undelivered(_: Msg) -> None:  # documents a subscriber; never called
    raise RuntimeError("a documentation router does not consume")


# The payload of a subject no catalog message is published on: RAW holds the providers'
# payloads as they were received, the DLQ each failed message as it was.
OPAQUE = {
    "type": "string",
    "contentEncoding": "binary",
    "description": "not a catalog message: a provider's payload as received (raw.>), or a "
    "dead-lettered message as it was (dlq.>)",
}


def _payloads(filter_subject: str) -> list[dict[str, str]]:
    """References to the catalog's schemas of every message a filter subject receives."""
    refs = []
    for model in all_models():
        probe = subject_pattern(model).replace(">", "x")
        if subject_matches(filter_subject, probe):
            refs.append({"$ref": f"../../libs/events/schemas/{model.name}.v{model.version}.json"})
    return refs


def asyncapi(service: str, subscriptions: Sequence[Subscription]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of a service's subscribers, built by FastStream from the
    same registration the service runs; each channel's payload refers to the catalog's
    schemas of the messages its filter subject receives."""
    svc = topology(service)
    broker = NatsBroker(apply_types=False)  # as BusBroker
    broker.include_router(router(dict.fromkeys(subscriptions, _undelivered)))
    # What it sends, as its topology declares (tests/deploy check that against its code).
    for subject in svc.publishes:
        broker.publisher(subject, title=f"{service}:{subject}", description=f"{service} sends")
    spec = AsyncAPI(
        broker,
        title=f"Switchboard {service}",
        version="1",
        description=svc.description or None,
    )
    doc: dict[str, Any] = spec.to_specification().to_jsonable()
    doc.pop("servers", None)  # the broker's default URL, not a deployment's
    by_name = {sub.durable.name: sub for sub in subscriptions}
    for key, channel in doc.get("channels", {}).items():
        channel.pop("servers", None)
        sub = by_name.get(key.split(":", 1)[0])  # keyed <durable> or <durable>:<filter>
        if sub is None:  # a publisher's: keyed <service>:<subject>
            continue
        channel["x-durable"] = {
            "name": sub.durable.name,
            "stream": sub.durable.stream,
            "reader": sub.reader,
            "batch": sub.batch,
            "ack_wait_s": sub.durable.ack_wait_s,
            "handlers": list(sub.durable.handlers),
            "decides": list(sub.durable.decides),
        }
    components = doc.get("components", {})
    for message in components.get("messages", {}).values():
        address = _address_of(doc, message)
        if address is not None:
            # A message schedule's body is the message it fires on one of its targets.
            fired = [t for h in svc.schedules if h.subject == address for t in h.targets]
            refs = [r for subject in fired or [address] for r in _payloads(subject)]
            # Nothing of the catalog (RAW): the provider's payload as it was received.
            message["payload"] = {"oneOf": refs} if refs else OPAQUE
        # The envelope's header (CloudEvents extensions, as the catalog's document says).
        message["correlationId"] = {"location": "$message.header#/correlation-id"}
    # FastStream's own payload schemas (of the handlers' signatures) were replaced by the
    # catalog's above.
    schemas = components.get("schemas", {})
    for name in [n for n in schemas if n == "EmptyPayload" or n.endswith(":Message:Payload")]:
        del schemas[name]
    return doc


def _address_of(doc: dict[str, Any], message: dict[str, Any]) -> str | None:
    """The channel address a component message belongs to (FastStream titles each
    ``<channel>:SubscribeMessage`` and a publisher's ``<channel>:Message``)."""
    title = str(message.get("title", ""))
    channel = title.removesuffix(":SubscribeMessage").removesuffix(":Message")
    found = doc.get("channels", {}).get(channel)
    return None if found is None else str(found.get("address"))
