"""Who talks to what on the bus: per service, the subjects it publishes, the durable consumers
it shares between its instances, the streams it reads otherwise, and the KV buckets it uses.

This is declared as data beside the streams (``topology.toml``, read here into the dataclasses
below, which say what each key means), so that deployment artefacts are generated from one
place (``switchboard-events k8s``): the NACK consumers, and the least-privilege NATS
permissions of each service's user. It is the one declaration of each durable: the catalog
must not import services, so the services build from it instead (a
``switchboard.runtime.subscribers.Subscription`` names its :class:`Durable` here and adds
only how the service works through it), and their FastStream subscribers and AsyncAPI
documents (``docs/asyncapi/``) follow from both.

Adding a service: add a ``[[services]]`` table to ``topology.toml``, run
``switchboard-events k8s``, and give it a ``deploy/k8s/base/<name>/`` directory (the tests
say what is missing).

Everything a service's NATS user may do follows from these declarations, each with its
reason (:attr:`Permissions.reasons`); nothing is granted by hand in the generated files.
Each consumer also names the functions that handle its messages and the pure functions that
decide (``handlers`` / ``decides``): ``docs/architecture.md`` is generated from them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Any

from pydantic import ConfigDict, TypeAdapter

from switchboard.events.streams import BUCKETS, STREAMS, subject_matches

API = "$JS.API"
INBOX = "_INBOX.>"


class Access(StrEnum):
    READ = "read"
    READ_WRITE = "read_write"


@dataclass(frozen=True, slots=True)
class Durable:
    """A durable pull consumer shared by every instance of a service (they split the work).

    The service's ``Subscription`` is built from it: ``max_deliver`` here is the server-side limit,
    unlimited (-1): redeliveries during an outage must not use up a message, so the
    service counts content failures itself (``switchboard.runtime.failures``).
    """

    stream: str
    name: str
    filter_subjects: tuple[str, ...]
    description: str
    ack_wait_s: int = 30
    max_deliver: int = -1
    max_ack_pending: int = 4096
    # "module:qualname" of the functions that handle its messages, and of the pure functions
    # that decide what they do (docs/architecture.md is generated from these; checked to
    # resolve by tests/contract).
    handlers: tuple[str, ...] = ()
    decides: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamRead:
    """Reading a stream without a durable: ephemeral/ordered consumers (projections, aggregate
    loads) and/or message gets (last by subject, next by subject)."""

    stream: str
    ephemeral_consumers: bool = True
    message_get: bool = False
    why: str = ""


@dataclass(frozen=True, slots=True)
class BucketUse:
    """A KV bucket a service reads (get, and ``watch`` when it lists or follows keys) or also
    writes (put, delete, purge)."""

    bucket: str
    access: Access
    watch: bool = False
    why: str = ""


@dataclass(frozen=True, slots=True)
class RuntimeDurables:
    """Durable pull consumers a service creates (and may delete) itself while it runs, one per
    entity (e.g. one per MTProto session), so they cannot be NACK resources.

    A consumer name is a single subject token and NATS permissions cannot match a prefix, so
    the service may create, pull from and ack *any* consumer name on ``stream``;
    :func:`permissions` then denies it, by name, every consumer of :data:`SERVICES` on that
    stream that it does not own (and the deletion of those it owns). ``name`` and
    ``filter_subject`` document the shape (``<session>`` stands for the entity) and are
    checked against the service's code by ``tests/deploy``.
    """

    stream: str
    name: str
    filter_subject: str
    why: str
    delete: bool = False  # the service also deletes them (e.g. at logout)
    handlers: tuple[str, ...] = ()  # as Durable.handlers
    decides: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageErase:
    """Deleting single messages of a stream by sequence (``STREAM.MSG.DELETE``), e.g. a handled
    command that carried a secret. The API names no subject: it covers the whole stream."""

    stream: str
    subjects: tuple[str, ...]  # what is erased (documentation; checked against the stream)
    why: str


@dataclass(frozen=True, slots=True)
class MessageSchedules:
    """Message schedules a service stores on ``subject`` (nats-server >= 2.12): each fires a
    copy of its body, a catalog message, on one of ``targets`` at its time."""

    subject: str
    targets: tuple[str, ...]
    why: str


@dataclass(frozen=True, slots=True)
class ServiceTopology:
    """What one service does on the bus."""

    name: str
    publishes: tuple[str, ...]
    durables: tuple[Durable, ...] = ()
    runtime_durables: tuple[RuntimeDurables, ...] = ()
    reads: tuple[StreamRead, ...] = ()
    erases: tuple[MessageErase, ...] = ()
    schedules: tuple[MessageSchedules, ...] = ()
    buckets: tuple[BucketUse, ...] = ()
    description: str = ""
    # Core NATS subjects it answers requests on (no stream stores them): inbox prefixes.
    answers: tuple[str, ...] = ()
    # The modules whose ``SUBSCRIPTIONS`` declare its durables (names only: the catalog never
    # imports a service); ``runtime.subscribers.declared`` loads them for every generator.
    declared_in: tuple[str, ...] = ()

    def streams(self) -> tuple[str, ...]:
        """Every stream this service touches through the JetStream API, in catalog order."""
        used = (
            {d.stream for d in self.durables}
            | {d.stream for d in self.runtime_durables}
            | {r.stream for r in self.reads}
            | {e.stream for e in self.erases}
        )
        return tuple(s.name for s in STREAMS if s.name in used)


# The declarations themselves are data: topology.toml beside this module, one [[services]]
# table each, in the order of SERVICES. A bucket use shared by several services (the API keys)
# is declared once under [bucket_uses] and named by `use`.
_SERVICES = TypeAdapter(tuple[ServiceTopology, ...], config=ConfigDict(extra="forbid"))


def load_services(text: str) -> tuple[ServiceTopology, ...]:
    """The services a topology document (TOML) declares, validated into the dataclasses above:
    a key they do not have, a wrong type or an unknown ``use`` is an error saying where."""
    doc = tomllib.loads(text)
    shared: dict[str, Any] = doc.get("bucket_uses", {})
    services: list[dict[str, Any]] = doc.get("services", [])
    for svc in services:
        buckets = svc.get("buckets", [])
        unknown = [b["use"] for b in buckets if "use" in b and b["use"] not in shared]
        if unknown:
            raise ValueError(f"{svc.get('name')}: no [bucket_uses.{unknown[0]}] to use")
        svc["buckets"] = [shared[b["use"]] if "use" in b else b for b in buckets]
    return _SERVICES.validate_python(services)


# The services that exist today, in one list: deployment artefacts are generated from it.
SERVICES: tuple[ServiceTopology, ...] = load_services(
    resources.files("switchboard.events").joinpath("topology.toml").read_text()
)


@dataclass(frozen=True, slots=True)
class Permissions:
    """A NATS user's allow lists (everything else is denied), and the exceptions carved out of
    its wildcards (``deny_publish`` wins over ``publish``, as in nats-server)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()
    reasons: dict[str, str] = field(default_factory=dict, compare=False)

    def may_publish(self, subject: str) -> bool:
        allowed = any(subject_matches(p, subject) for p in self.publish)
        return allowed and not any(subject_matches(d, subject) for d in self.deny_publish)

    def may_subscribe(self, subject: str) -> bool:
        return any(subject_matches(p, subject) for p in self.subscribe)


def kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def _probe(subject: str) -> str:
    """A concrete subject standing for a pattern (its wildcards as literal tokens)."""
    return subject.replace(">", "x").replace("*", "x")


def _captured(subject: str, patterns: Iterable[str]) -> bool:
    """Whether one of ``patterns`` takes in every subject that ``subject`` (a pattern) names."""
    return any(subject_matches(p, _probe(subject)) for p in patterns)


def _durable_operations(stream: str, name: str) -> dict[str, str]:
    """The subjects through which a durable is changed, read or settled."""
    return {
        f"{API}.CONSUMER.DURABLE.CREATE.{stream}.{name}": "create or update",
        f"{API}.CONSUMER.CREATE.{stream}.{name}": "create or update",
        f"{API}.CONSUMER.CREATE.{stream}.{name}.>": "create or update",
        f"{API}.CONSUMER.MSG.NEXT.{stream}.{name}": "pull from",
        f"$JS.ACK.{stream}.{name}.>": "ack",
        f"{API}.CONSUMER.DELETE.{stream}.{name}": "delete",
    }


def permissions(
    service: ServiceTopology, services: tuple[ServiceTopology, ...] = SERVICES
) -> Permissions:
    """The least privilege a service's NATS user needs, derived from its topology.

    Only what the clients actually send (nats-py): ``$JS.API.INFO`` for readiness, stream
    info, consumer create (legacy ``DURABLE.CREATE`` and named ``CONSUMER.CREATE``), info
    and next-message requests for its own durables; ephemeral consumers (server-named, hence
    a wildcard for the name; deleted by their creator when done) on the streams it reads;
    message gets where declared; acks of its durables; KV subjects of its buckets and
    flow-control replies of KV watchers. No stream or bucket administration: NACK provisions
    them. Replies come on ``_INBOX.>``.

    Runtime durables and message erasure are the two exceptions, each declared with its
    reason. Where a wildcard needed for them (or for ephemeral consumers) would also reach a
    durable of :data:`SERVICES` the service does not own, or the deletion of one it owns
    (NACK's, with the service's progress in it), that subject is denied by name.
    """
    pub: dict[str, str] = {}

    def allow(subject: str, why: str) -> None:
        pub.setdefault(subject, why)

    for subject in service.publishes:
        allow(subject, "publishes")
    for subject in service.answers:
        allow(subject, "answers requests on")
    allow(f"{API}.INFO", "readiness (/readyz asks JetStream for account info)")
    for stream in service.streams():
        allow(f"{API}.STREAM.INFO.{stream}", f"stream info of {stream}")
    for d in service.durables:
        why = f"durable {d.name} on {d.stream}"
        allow(f"{API}.CONSUMER.DURABLE.CREATE.{d.stream}.{d.name}", why)
        allow(f"{API}.CONSUMER.CREATE.{d.stream}.{d.name}", why)
        allow(f"{API}.CONSUMER.CREATE.{d.stream}.{d.name}.>", why)
        allow(f"{API}.CONSUMER.INFO.{d.stream}.{d.name}", why)
        allow(f"{API}.CONSUMER.MSG.NEXT.{d.stream}.{d.name}", why)
        allow(f"$JS.ACK.{d.stream}.{d.name}.>", why)
    for rd in service.runtime_durables:
        # nats-py creates them with the legacy API (a durable name, no `name`), pulls with
        # MSG.NEXT and acks through the reply subject; pull_subscribe_bind asks no info.
        why = f"runtime durables {rd.name} on {rd.stream}: {rd.why}"
        allow(f"{API}.CONSUMER.DURABLE.CREATE.{rd.stream}.*", why)
        allow(f"{API}.CONSUMER.MSG.NEXT.{rd.stream}.*", why)
        allow(f"$JS.ACK.{rd.stream}.*.>", why)
        if rd.delete:
            allow(f"{API}.CONSUMER.DELETE.{rd.stream}.*", why)
    for r in service.reads:
        if r.ephemeral_consumers:
            why = f"ephemeral consumers on {r.stream}"
            # Without a name in the config nats-py uses the bare subject, which the server
            # accepts for ephemeral consumers only (a durable name there is refused).
            allow(f"{API}.CONSUMER.CREATE.{r.stream}", why)
            allow(f"{API}.CONSUMER.CREATE.{r.stream}.*", why)
            allow(f"{API}.CONSUMER.CREATE.{r.stream}.*.>", why)
            allow(f"{API}.CONSUMER.INFO.{r.stream}.*", why)
            allow(f"{API}.CONSUMER.MSG.NEXT.{r.stream}.*", why)
            # A projection deletes its consumer when it stops or resubscribes, rather than
            # leave it to the server's inactivity threshold.
            allow(f"{API}.CONSUMER.DELETE.{r.stream}.*", why + ", deleted when done")
        if r.message_get:
            why = f"message gets on {r.stream}"
            allow(f"{API}.STREAM.MSG.GET.{r.stream}", why)
            allow(f"{API}.DIRECT.GET.{r.stream}", why)
            allow(f"{API}.DIRECT.GET.{r.stream}.>", why)
    for e in service.erases:
        allow(f"{API}.STREAM.MSG.DELETE.{e.stream}", f"erases messages of {e.stream}: {e.why}")
        # JetStream answers the delete of a message already gone with a generic "delete
        # failed"; the bus reads the message to tell "gone" from a failure (Bus.delete_msg).
        allow(
            f"{API}.STREAM.MSG.GET.{e.stream}", f"confirms an erased message of {e.stream} is gone"
        )
    for b in service.buckets:
        stream = kv_stream(b.bucket)
        why = f"KV bucket {b.bucket} ({b.access.value})"
        allow(f"{API}.STREAM.INFO.{stream}", why)
        allow(f"{API}.STREAM.MSG.GET.{stream}", why)
        allow(f"{API}.DIRECT.GET.{stream}", why)
        allow(f"{API}.DIRECT.GET.{stream}.>", why)
        if b.watch:
            allow(f"{API}.CONSUMER.CREATE.{stream}", why + ", watch")
            allow(f"{API}.CONSUMER.CREATE.{stream}.*", why + ", watch")
            allow(f"{API}.CONSUMER.CREATE.{stream}.*.>", why + ", watch")
            allow(f"{API}.CONSUMER.INFO.{stream}.*", why + ", watch")
            # runtime.kv.entries lists the current values with a pull consumer
            allow(f"{API}.CONSUMER.MSG.NEXT.{stream}.*", why + ", listing")
            allow(f"{API}.CONSUMER.DELETE.{stream}.*", why + ", listing done")
            allow(f"$JS.FC.{stream}.>", why + ", watch flow control")
        if b.access is Access.READ_WRITE:
            allow(f"$KV.{b.bucket}.>", why)

    deny: dict[str, str] = {}
    for owner in services:
        for d in owner.durables:
            for subject, verb in _durable_operations(d.stream, d.name).items():
                if subject in pub:
                    continue  # granted by name: its own durable
                if owner.name == service.name and verb != "delete":
                    continue
                if _captured(subject, pub):
                    whose = "its own" if owner.name == service.name else f"{owner.name}'s"
                    deny[subject] = f"may not {verb} {whose} durable {d.name} on {d.stream}"
    reasons = {**pub, **deny}
    return Permissions(
        publish=tuple(pub), subscribe=(INBOX,), deny_publish=tuple(deny), reasons=reasons
    )


def runtime_durables_in_reach(
    service: ServiceTopology, services: tuple[ServiceTopology, ...] = SERVICES
) -> list[str]:
    """Other services' runtime durables that this service's consumer-name wildcards reach.

    NACK durables are denied by name (:func:`permissions`); runtime durables have no fixed
    name, and NATS cannot deny a prefix, so a service reading a stream with ephemeral
    consumers could also pull from, update or delete them. Nothing in its code does; the
    grant is wider than its use, and each case is listed in docs/deploy.md.
    """
    wild = {r.stream for r in service.reads if r.ephemeral_consumers}
    wild |= {rd.stream for rd in service.runtime_durables}
    return [
        f"{owner.name}'s {rd.name} on {rd.stream}"
        for owner in services
        if owner.name != service.name
        for rd in owner.runtime_durables
        if rd.stream in wild
    ]


def check_topology(services: tuple[ServiceTopology, ...] = SERVICES) -> list[str]:
    """Problems with the declarations (unknown streams or buckets, uncaptured subjects)."""
    problems: list[str] = []
    streams = {s.name: s for s in STREAMS}
    buckets = {b.name for b in BUCKETS}
    names: set[str] = set()

    def stray(stream: str, subjects: Iterable[str]) -> list[str] | None:
        """The ``subjects`` that ``stream`` never holds; None when there is no such stream."""
        spec = streams.get(stream)
        return None if spec is None else [s for s in subjects if not _captured(s, spec.subjects)]

    for svc in services:
        if svc.name in names:
            problems.append(f"service {svc.name} declared twice")
        names.add(svc.name)
        for subject in svc.publishes:
            if not _captured(subject, (p for s in STREAMS for p in s.subjects)):
                problems.append(f"{svc.name} publishes {subject}, which no stream captures")
        # Every consumer, declared or made at run time, reads subjects its stream holds.
        consumers = [
            (f"durable {d.name}", d.name, d.stream, d.filter_subjects) for d in svc.durables
        ]
        consumers += [
            ("runtime durables", rd.name, rd.stream, (rd.filter_subject,))
            for rd in svc.runtime_durables
        ]
        for label, name, stream, filters in consumers:
            outside = stray(stream, filters)
            if outside is None:
                problems.append(f"{svc.name}: {label} on unknown stream {stream}")
            problems += [f"{svc.name}: {name} filters {f} outside {stream}" for f in outside or ()]
        for rd in svc.runtime_durables:
            prefix = rd.name.split("<", 1)[0]
            if not prefix or prefix == rd.name:
                problems.append(f"{svc.name}: {rd.name} needs a fixed prefix and a <placeholder>")
            clash = [d.name for s in services for d in s.durables if d.name.startswith(prefix)]
            if prefix and clash:
                problems.append(f"{svc.name}: durables {clash} look like runtime {rd.name}")
        for r in svc.reads:
            if r.stream not in streams:
                problems.append(f"{svc.name} reads unknown stream {r.stream}")
        for e in svc.erases:
            outside = stray(e.stream, e.subjects)
            if outside is None:
                problems.append(f"{svc.name} erases from unknown stream {e.stream}")
            problems += [
                f"{svc.name} erases {x}, which {e.stream} never holds" for x in outside or ()
            ]
        for h in svc.schedules:
            problems += [
                f"{svc.name} schedules on {x} without publishing it"
                for x in (h.subject, *h.targets)
                if x not in svc.publishes
            ]
        for b in svc.buckets:
            if b.bucket not in buckets:
                problems.append(f"{svc.name} uses unknown bucket {b.bucket}")
    durables = [(d.stream, d.name) for s in services for d in s.durables]
    if len(durables) != len(set(durables)):
        problems.append("a durable consumer is declared twice")
    return problems
