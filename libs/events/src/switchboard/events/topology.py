"""Who talks to what on the bus: per service, the subjects it publishes, the durable consumers
it shares between its instances, the streams it reads otherwise, and the KV buckets it uses.

This is declared here, beside the streams, so that deployment artefacts are generated from one
place (``switchboard-events k8s``): the NACK consumers, and the least-privilege NATS
permissions of each service's user. The catalog must not import services, so the services'
own declarations (``ConsumerSpec`` objects in their code) are mirrored here, and
``tests/deploy`` checks the two agree.

Adding a service: add a :class:`ServiceTopology` to :data:`SERVICES`, run
``switchboard-events k8s``, and give it a ``deploy/k8s/base/<name>/`` directory (the tests
say what is missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from switchboard.events.streams import BUCKETS, STREAMS, subject_matches

API = "$JS.API"
INBOX = "_INBOX.>"


class Access(StrEnum):
    READ = "read"
    READ_WRITE = "read_write"


@dataclass(frozen=True, slots=True)
class Durable:
    """A durable pull consumer shared by every instance of a service (they split the work).

    Mirrors the service's ``ConsumerSpec``: ``max_deliver`` here is the server-side limit,
    which is the service's retry count plus the last delivery that only dead-letters.
    """

    stream: str
    name: str
    filter_subjects: tuple[str, ...]
    description: str
    ack_wait_s: int = 30
    max_deliver: int = 6
    max_ack_pending: int = 4096


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
class ServiceTopology:
    """What one service does on the bus."""

    name: str
    publishes: tuple[str, ...]
    durables: tuple[Durable, ...] = ()
    reads: tuple[StreamRead, ...] = ()
    buckets: tuple[BucketUse, ...] = ()
    description: str = ""

    def streams(self) -> tuple[str, ...]:
        """Every stream this service touches through the JetStream API, in catalog order."""
        used = {d.stream for d in self.durables} | {r.stream for r in self.reads}
        return tuple(s.name for s in STREAMS if s.name in used)


INGEST = ServiceTopology(
    name="ingest",
    description="webhooks -> RAW; the normalizer turns RAW into conv.* and delivery receipts",
    publishes=("raw.>", "conv.>", "delivery.receipt.>", "dlq.>"),
    durables=(
        Durable(
            stream="RAW",
            name="ingest-normalizer",
            filter_subjects=("raw.>",),
            description="normalizes verified provider payloads into conversation events",
        ),
    ),
    buckets=(
        BucketUse(
            "accounts",
            Access.READ_WRITE,
            watch=True,
            why="channel accounts: every instance watches them; the admin API writes them",
        ),
        BucketUse("dedup", Access.READ_WRITE, why="event ids already published"),
    ),
)

CRM = ServiceTopology(
    name="crm",
    description="contacts and leads (event-sourced in CRM), projections into Postgres",
    publishes=("crm.>", "dlq.>"),
    durables=(
        Durable(
            stream="CONV",
            name="crm-resolver",
            filter_subjects=("conv.message_received.>",),
            description="resolves the sender of every inbound message to one contact",
        ),
        Durable(
            stream="CRM_COMMANDS",
            name="crm-commands",
            filter_subjects=("cmd.crm.>",),
            description="applies commands to the CRM aggregates",
        ),
    ),
    reads=(
        StreamRead("CONV", why="conversations projection (ordered, from its checkpoint)"),
        StreamRead(
            "CRM",
            message_get=True,
            why="CRM projection; aggregate loads; last/next message by aggregate subject",
        ),
        StreamRead("DELIVERY", why="deliveries projection"),
    ),
)

OUTBOUND = ServiceTopology(
    name="outbound",
    description="send commands from OUTBOUND to the providers, at their limits; delivery events",
    publishes=(
        "cmd.outbound.send.>",
        "delivery.queued.>",
        "delivery.retrying.>",
        "delivery.sent.>",
        "delivery.failed.>",
        "conv.message_sent.>",
        "dlq.>",
    ),
    durables=(
        Durable(
            stream="OUTBOUND",
            name="outbound-sends",
            filter_subjects=("cmd.outbound.send.>",),
            description="sends each command through its channel account, once",
            ack_wait_s=60,
            max_deliver=1001,
            max_ack_pending=20_000,
        ),
    ),
    buckets=(
        BucketUse(
            "accounts",
            Access.READ,
            watch=True,
            why="channel accounts: every instance watches them (ingest writes them)",
        ),
        BucketUse(
            "ratelimit",
            Access.READ_WRITE,
            why="rate-limit slots and pauses shared by every instance",
        ),
        BucketUse("sends", Access.READ_WRITE, why="attempt records per message_id"),
    ),
)

# The services that exist today, in one list: deployment artefacts are generated from it.
SERVICES: tuple[ServiceTopology, ...] = (INGEST, CRM, OUTBOUND)


@dataclass(frozen=True, slots=True)
class Permissions:
    """A NATS user's allow lists (everything else is denied)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    reasons: dict[str, str] = field(default_factory=dict, compare=False)

    def may_publish(self, subject: str) -> bool:
        return any(subject_matches(p, subject) for p in self.publish)

    def may_subscribe(self, subject: str) -> bool:
        return any(subject_matches(p, subject) for p in self.subscribe)


def kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def permissions(service: ServiceTopology) -> Permissions:
    """The least privilege a service's NATS user needs, derived from its topology.

    Only what the clients actually send (nats-py): ``$JS.API.INFO`` for readiness, stream
    info, consumer create (legacy ``DURABLE.CREATE`` and named ``CONSUMER.CREATE``), info
    and next-message requests for its own durables; ephemeral consumers (server-named, hence
    a wildcard for the name) on the streams it reads; message gets where declared; acks of
    its durables; KV subjects of its buckets and flow-control replies of KV watchers. No
    stream or bucket administration: NACK provisions them. Replies come on ``_INBOX.>``.
    """
    pub: dict[str, str] = {}

    def allow(subject: str, why: str) -> None:
        pub.setdefault(subject, why)

    for subject in service.publishes:
        allow(subject, "publishes")
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
    for r in service.reads:
        if r.ephemeral_consumers:
            why = f"ephemeral consumers on {r.stream}"
            allow(f"{API}.CONSUMER.CREATE.{r.stream}.*", why)
            allow(f"{API}.CONSUMER.CREATE.{r.stream}.*.>", why)
            allow(f"{API}.CONSUMER.INFO.{r.stream}.*", why)
            allow(f"{API}.CONSUMER.MSG.NEXT.{r.stream}.*", why)
        if r.message_get:
            why = f"message gets on {r.stream}"
            allow(f"{API}.STREAM.MSG.GET.{r.stream}", why)
            allow(f"{API}.DIRECT.GET.{r.stream}", why)
            allow(f"{API}.DIRECT.GET.{r.stream}.>", why)
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
            allow(f"$JS.FC.{stream}.>", why + ", watch flow control")
        if b.access is Access.READ_WRITE:
            allow(f"$KV.{b.bucket}.>", why)
    return Permissions(publish=tuple(pub), subscribe=(INBOX,), reasons=dict(pub))


def check_topology(services: tuple[ServiceTopology, ...] = SERVICES) -> list[str]:
    """Problems with the declarations (unknown streams or buckets, uncaptured subjects)."""
    problems: list[str] = []
    streams = {s.name: s for s in STREAMS}
    buckets = {b.name for b in BUCKETS}
    names: set[str] = set()
    for svc in services:
        if svc.name in names:
            problems.append(f"service {svc.name} declared twice")
        names.add(svc.name)
        for subject in svc.publishes:
            probe = subject.replace(">", "x").replace("*", "x")
            if not any(subject_matches(p, probe) for s in STREAMS for p in s.subjects):
                problems.append(f"{svc.name} publishes {subject}, which no stream captures")
        for d in svc.durables:
            spec = streams.get(d.stream)
            if spec is None:
                problems.append(f"{svc.name}: durable {d.name} on unknown stream {d.stream}")
                continue
            for f in d.filter_subjects:
                probe = f.replace(">", "x").replace("*", "x")
                if not any(subject_matches(p, probe) for p in spec.subjects):
                    problems.append(f"{svc.name}: {d.name} filters {f} outside {d.stream}")
        for r in svc.reads:
            if r.stream not in streams:
                problems.append(f"{svc.name} reads unknown stream {r.stream}")
        for b in svc.buckets:
            if b.bucket not in buckets:
                problems.append(f"{svc.name} uses unknown bucket {b.bucket}")
    durables = [(d.stream, d.name) for s in services for d in s.durables]
    if len(durables) != len(set(durables)):
        problems.append("a durable consumer is declared twice")
    return problems
