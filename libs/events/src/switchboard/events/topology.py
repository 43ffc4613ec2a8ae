"""Who talks to what on the bus: per service, the subjects it publishes, the durable consumers
it shares between its instances, the streams it reads otherwise, and the KV buckets it uses.

This is declared here, beside the streams, so that deployment artefacts are generated from one
place (``switchboard-events k8s``): the NACK consumers, and the least-privilege NATS
permissions of each service's user. It is the one declaration of each durable: the catalog
must not import services, so the services build from it instead (a
``switchboard.runtime.subscribers.Subscription`` names its :class:`Durable` here and adds
only how the service works through it), and their FastStream subscribers and AsyncAPI
documents (``docs/asyncapi/``) follow from both.

Adding a service: add a :class:`ServiceTopology` to :data:`SERVICES`, run
``switchboard-events k8s``, and give it a ``deploy/k8s/base/<name>/`` directory (the tests
say what is missing).

Everything a service's NATS user may do follows from these declarations, each with its
reason (:attr:`Permissions.reasons`); nothing is granted by hand in the generated files.
Each consumer also names the functions that handle its messages and the pure functions that
decide (``handlers`` / ``decides``): ``docs/architecture.md`` is generated from them.
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
class ServiceTopology:
    """What one service does on the bus."""

    name: str
    publishes: tuple[str, ...]
    durables: tuple[Durable, ...] = ()
    runtime_durables: tuple[RuntimeDurables, ...] = ()
    reads: tuple[StreamRead, ...] = ()
    erases: tuple[MessageErase, ...] = ()
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


# Every service authenticates API keys against the shared bucket (watched, so a revocation
# is seen at once) and records a key's last use there, at most once a minute per key.
API_KEY_USE = BucketUse(
    "api_keys",
    Access.READ_WRITE,
    watch=True,
    why="API keys: every instance watches them and records last use",
)

INGEST = ServiceTopology(
    name="ingest",
    declared_in=("switchboard.ingest.normalizer",),
    description="webhooks -> RAW; the normalizer turns RAW into conv.* and delivery receipts",
    publishes=("raw.>", "conv.>", "delivery.receipt.>", "dlq.>"),
    durables=(
        Durable(
            stream="RAW",
            name="ingest-normalizer",
            filter_subjects=("raw.>",),
            description="normalizes verified provider payloads into conversation events",
            handlers=("switchboard.ingest.normalizer:handle_raw",),
            decides=("switchboard.ingest.normalizer:normalize_raw",),
        ),
    ),
    buckets=(
        API_KEY_USE,
        BucketUse(
            "accounts",
            Access.READ_WRITE,
            watch=True,
            why="channel accounts: every instance watches them; the admin API writes them",
        ),
        BucketUse("dedup", Access.READ_WRITE, why="event ids already published"),
        BucketUse(
            "pii_keys",
            Access.READ_WRITE,
            watch=True,
            why="data-subject keys: created on first use when the normalizer seals personal fields",
        ),
    ),
)

CRM = ServiceTopology(
    name="crm",
    declared_in=("switchboard.crm.app",),
    description="contacts and leads (event-sourced in CRM), projections into Postgres; "
    "campaigns to a segment handed to outbound",
    # A segment is expanded here (the CRM's tables) and sent by outbound as a campaign.
    publishes=(
        "crm.>",
        "cmd.outbound.campaign_start.>",
        "cmd.outbound.campaign_recipients.>",
        "cmd.flows.start_runs.>",  # a flow's segment schedule: the segment's conversations
        "cmd.mtproto.fetch_media.>",  # user-account files, answered on _INBOX.mtproto.>
        "dlq.>",
    ),
    durables=(
        Durable(
            stream="CONV",
            name="crm-resolver",
            filter_subjects=(
                "conv.message_received.>",
                "conv.contact_number_changed.>",
                "conv.contact_status_changed.>",
            ),
            description="resolves the sender of every inbound message to one contact",
            handlers=(
                "switchboard.crm.resolver:Resolver.resolve",
                "switchboard.crm.resolver:Resolver.number_changed",
                "switchboard.crm.resolver:Resolver.opened",
            ),
        ),
        Durable(
            stream="CRM_COMMANDS",
            name="crm-commands",
            filter_subjects=("cmd.crm.>",),
            description="applies commands to the CRM aggregates",
            handlers=("switchboard.crm.app:handle_command", "switchboard.crm.commands:execute"),
            decides=(
                "switchboard.crm.decisions:change_lead_stage",
                "switchboard.crm.decisions:assign_lead",
                "switchboard.crm.decisions:create_lead",
                "switchboard.crm.decisions:update_contact",
                "switchboard.crm.decisions:merge_contacts",
                "switchboard.crm.decisions:split_contact",
                "switchboard.crm.decisions:erase_contact",
            ),
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
        StreamRead("MTPROTO", why="user-account status projection (latest per session)"),
    ),
    buckets=(
        API_KEY_USE,
        BucketUse(
            "accounts",
            Access.READ,
            watch=True,
            why="channel accounts: their tokens download the files customers sent",
        ),
        BucketUse(
            "pii_keys",
            Access.READ_WRITE,
            watch=True,
            why="data-subject keys: opened by the projections, purged by an erasure",
        ),
    ),
)

OUTBOUND = ServiceTopology(
    name="outbound",
    declared_in=("switchboard.outbound.app",),
    description="send commands from OUTBOUND to the providers at their limits (conversational "
    "and bulk lanes), campaigns, conversions, SendPulse commands; delivery events",
    publishes=(
        "cmd.outbound.send.>",  # POST /v1/messages
        "cmd.outbound.bulk_send.>",  # campaign fan-out, POST /v1/messages with priority bulk
        "cmd.outbound.campaign_start.>",  # POST /v1/campaigns ...
        "cmd.outbound.campaign_recipients.>",
        "cmd.outbound.campaign_control.>",
        "cmd.outbound.schedule_change.>",  # POST /v1/messages/{id}/cancel, .../reschedule
        "cmd.outbound.answer_callback.>",  # POST /v1/callbacks/answer
        "cmd.outbound.edit.>",  # POST /v1/messages/{id}/edit
        "cmd.outbound.delete.>",  # POST /v1/messages/{id}/delete
        "cmd.mtproto.deliver.>",  # sends through user accounts, answered on _INBOX.mtproto.>
        "delivery.queued.>",
        "delivery.retrying.>",
        "delivery.sent.>",
        "delivery.failed.>",
        "delivery.rejected.>",
        "delivery.rescheduled.>",
        "delivery.interaction_applied.>",
        "delivery.interaction_failed.>",
        "delivery.campaign_status.>",
        "delivery.campaign_progress.>",
        "delivery.campaign_completed.>",
        "delivery.conversion_sent.>",
        "delivery.conversion_failed.>",
        "delivery.dispatched.>",
        "delivery.dispatch_failed.>",
        "conv.message_sent.>",
        "dlq.>",
    ),
    durables=(
        Durable(
            stream="OUTBOUND",
            name="outbound-sends",
            filter_subjects=("cmd.outbound.send.>",),
            description="conversational lane: sends each command through its account, once",
            handlers=("switchboard.outbound.sender:Sender.handle",),
            ack_wait_s=10,
            max_ack_pending=20_000,
        ),
        Durable(
            stream="OUTBOUND",
            name="outbound-bulk",
            filter_subjects=("cmd.outbound.bulk_send.>",),
            description="bulk lane: campaign sends, yielding the rate to conversations",
            handlers=("switchboard.outbound.sender:Sender.handle",),
            ack_wait_s=10,
            max_ack_pending=20_000,
        ),
        Durable(
            stream="OUTBOUND",
            name="outbound-campaigns",
            filter_subjects=(
                "cmd.outbound.campaign_start.>",
                "cmd.outbound.campaign_recipients.>",
                "cmd.outbound.campaign_control.>",
            ),
            description="campaign starts, recipient batches, pause / resume / cancel",
            handlers=("switchboard.outbound.campaigns.commands:CampaignCommands.handle",),
            ack_wait_s=30,
            max_ack_pending=1000,
        ),
        Durable(
            stream="OUTBOUND",
            name="outbound-conversions",
            filter_subjects=("cmd.outbound.conversion.>",),
            description="Meta CAPI conversions, batched per pixel",
            handlers=("switchboard.outbound.conversions:ConversionSender.handle",),
            decides=("switchboard.outbound.conversions:capi_event",),
            ack_wait_s=30,
            max_ack_pending=10_000,
        ),
        Durable(
            stream="OUTBOUND",
            name="outbound-dispatch",
            filter_subjects=(
                "cmd.outbound.email.>",
                "cmd.outbound.sms.>",
                "cmd.outbound.address_book_sync.>",
            ),
            description="SendPulse email, SMS and address-book sync",
            handlers=("switchboard.outbound.dispatch:ProviderCommands.handle",),
            ack_wait_s=30,
            max_ack_pending=5000,
        ),
        Durable(
            stream="OUTBOUND",
            name="outbound-schedule",
            filter_subjects=("cmd.outbound.schedule_change.>",),
            description="cancel or move later a scheduled send until it leaves",
            handlers=("switchboard.outbound.schedule:ScheduleDesk.handle",),
            decides=(
                "switchboard.outbound.schedule:refuse_change",
                "switchboard.outbound.schedule:effective_time",
            ),
            ack_wait_s=30,
            max_ack_pending=1000,
        ),
        Durable(
            stream="OUTBOUND",
            name="outbound-interactions",
            filter_subjects=(
                "cmd.outbound.answer_callback.>",
                "cmd.outbound.edit.>",
                "cmd.outbound.delete.>",
                "cmd.outbound.bot_commands.>",
            ),
            description="answers to pressed buttons, edits and deletions of sent messages, "
            "bot command menus",
            handlers=("switchboard.outbound.interactions:Interactions.handle",),
            decides=("switchboard.outbound.interactions:already_done",),
            ack_wait_s=30,
            max_ack_pending=5000,
        ),
        Durable(
            stream="CRM",
            name="outbound-erasure",
            filter_subjects=("crm.contact_erased.>",),
            description="erased contacts: their recipients leave the attempt records",
            handlers=("switchboard.outbound.erasure:forget",),
            decides=("switchboard.outbound.erasure:scrub",),
            ack_wait_s=60,
            max_ack_pending=16,
        ),
    ),
    reads=(
        StreamRead(
            "OUTBOUND",
            ephemeral_consumers=False,
            message_get=True,
            why="whether the command owning a message_id still waits in the stream",
        ),
    ),
    buckets=(
        API_KEY_USE,
        BucketUse(
            "accounts",
            Access.READ,
            watch=True,
            why="channel accounts: every instance watches them (ingest writes them)",
        ),
        BucketUse(
            "ratelimit",
            Access.READ_WRITE,
            watch=True,
            why="rate-limit slots, holds and pauses shared by every instance (pauses watched)",
        ),
        BucketUse(
            "sends",
            Access.READ_WRITE,
            watch=True,
            why="attempt records per message_id; campaign state, batches, cursors (watched); "
            "schedule changes; provider file ids shared by every instance",
        ),
        BucketUse("leases", Access.READ_WRITE, why="which instance leads each campaign"),
        BucketUse(
            "pii_keys",
            Access.READ_WRITE,
            watch=True,
            why="data-subject keys: delivery events seal recipients and texts",
        ),
        BucketUse(
            "calendar",
            Access.READ_WRITE,
            why="content calendar: post templates (every version) and scheduled posts",
        ),
    ),
)

LOGIN_COMMANDS = ("login_start", "login_submit_code", "login_submit_password")

MTPROTO = ServiceTopology(
    name="mtproto",
    declared_in=("switchboard.mtproto.commands",),
    description="Telegram user sessions (one owner each, by lease): logins, live updates and "
    "backfills as conv.*, sends as a user with delivery.*",
    publishes=(
        "mtproto.>",
        "cmd.mtproto.send.>",
        "cmd.mtproto.list_dialogs.>",  # the API asks a session's holder (dialogs.py)
        "cmd.mtproto.search_contacts.>",
        "delivery.receipt.>",  # read receipts of sends made for outbound
        "conv.message_received.>",
        "conv.message_edited.>",
        "conv.message_deleted.>",
        "conv.message_sent.>",
        "delivery.sent.>",
        "delivery.retrying.>",
        "delivery.failed.>",
        "dlq.>",
    ),
    durables=(
        Durable(
            stream="MTPROTO",
            name="mtproto-commands",
            filter_subjects=tuple(
                f"cmd.mtproto.{name}.>"
                for name in (
                    *LOGIN_COMMANDS,
                    "logout",
                    "subscribe",
                    "unsubscribe",
                    "backfill",
                    # seen only to wake a parked (idle) session; its holder serves them
                    "send",
                    "list_dialogs",
                    "search_contacts",
                    "deliver",
                    "fetch_media",
                )
            ),
            description="login steps, logout, subscriptions and backfills of the sessions; "
            "sends and queries wake an idle session",
            handlers=("switchboard.mtproto.commands:handle",),
            ack_wait_s=60,
        ),
    ),
    runtime_durables=(
        RuntimeDurables(
            stream="MTPROTO",
            name="mtproto-send-<session>",
            filter_subject="cmd.mtproto.send.v1.*",
            why="one send queue per session, created and read by its lease holder only "
            "(sends go out one at a time and continue with the next holder), deleted at logout",
            delete=True,
            handlers=("switchboard.mtproto.runner:SessionRunner._send_one",),
        ),
        RuntimeDurables(
            stream="MTPROTO",
            name="mtproto-query-<session>",
            filter_subject="cmd.mtproto.*.v1.*",
            why="one queue of dialogs / contact-search queries per session, read by its lease "
            "holder only (list_dialogs and search_contacts), deleted at logout",
            delete=True,
            handlers=("switchboard.mtproto.dialogs:QueryServer.handle",),
        ),
        RuntimeDurables(
            stream="MTPROTO",
            name="mtproto-deliver-<session>",
            filter_subject="cmd.mtproto.deliver.v1.*",
            why="outbound's sends through a session, read by its lease holder only and "
            "answered on the sender's inbox, deleted at logout",
            delete=True,
            handlers=("switchboard.mtproto.relay:Relay.handle",),
        ),
        RuntimeDurables(
            stream="MTPROTO",
            name="mtproto-media-<session>",
            filter_subject="cmd.mtproto.fetch_media.v1.*",
            why="the CRM's downloads of received files through a session, read by its lease "
            "holder only, stored in the object store and answered on the sender's inbox, "
            "deleted at logout",
            delete=True,
            handlers=("switchboard.mtproto.media_fetch:MediaServer.handle",),
        ),
    ),
    # outbound's mtproto.deliver and the CRM's mtproto.fetch_media: only that inbox prefix
    answers=("_INBOX.mtproto.>",),
    erases=(
        MessageErase(
            stream="MTPROTO",
            subjects=tuple(f"cmd.mtproto.{name}.>" for name in LOGIN_COMMANDS),
            why="handled login commands carry a code, a password or an app hash: erased",
        ),
    ),
    buckets=(
        API_KEY_USE,
        BucketUse(
            "leases",
            Access.READ_WRITE,
            watch=True,
            why="session leases and instance announcements: claimed by compare-and-set, "
            "renewed, released; every instance watches them",
        ),
        BucketUse("dedup", Access.READ_WRITE, why="conv event ids already published"),
        BucketUse(
            "accounts",
            Access.READ_WRITE,
            why="sessions as accounts of channel mtproto (workspace, active / revoked / "
            "restricted) for outbound",
        ),
        BucketUse(
            "pii_keys",
            Access.READ_WRITE,
            watch=True,
            why="data-subject keys: the conv events of user accounts are sealed",
        ),
    ),
)

ANALYTICS = ServiceTopology(
    name="analytics",
    description="rollups of every stream in Postgres (one checkpointed projection each), the "
    "query API and dashboard; won leads become conversion commands for outbound",
    # Conversions go to Meta through outbound: analytics calls no provider itself.
    publishes=("cmd.outbound.conversion.>", "dlq.>"),
    reads=(
        StreamRead(
            "CONV", why="messages, latencies, first response (ordered, from its checkpoint)"
        ),
        StreamRead("DELIVERY", why="delivery outcomes, send latency, campaigns"),
        StreamRead("CRM", why="lead funnel; conversions decided from stage changes"),
        StreamRead("MTPROTO", why="session and backfill rollups"),
        StreamRead("FLOWS", why="per-flow funnel: runs, steps reached, completions"),
    ),
    buckets=(
        API_KEY_USE,
        BucketUse(
            "dashboard_sessions",
            Access.READ_WRITE,
            why="dashboard sign-ins and login attempt counters",
        ),
        BucketUse(
            "pii_keys",
            Access.READ,
            watch=True,
            why="data-subject keys: the projections open sealed personal data",
        ),
    ),
)

FLOWS = ServiceTopology(
    name="flows",
    declared_in=("switchboard.flows.runner",),
    description="bot scenarios: flow documents and event-sourced runs in FLOWS; reacts to "
    "conversations and due timers with sends (outbound) and CRM commands, exactly once",
    publishes=(
        "flows.>",
        "cmd.flows.>",  # timers: message schedules the server fires on cmd.flows.fire_timer
        "cmd.outbound.send.>",
        "cmd.outbound.answer_callback.>",  # a pressed button of a run is answered
        "cmd.outbound.bot_commands.>",  # the command menu of a bot, from its flows
        "cmd.crm.update_contact.>",
        "cmd.crm.create_lead.>",  # the lead step's "create"
        "cmd.crm.change_lead_stage.>",
        "cmd.crm.assign_lead.>",
        "cmd.crm.start_campaign.>",  # the campaign step: a segment campaign through the CRM
        "cmd.crm.start_flow.>",  # a schedule trigger's segment, expanded by the CRM
        "dlq.>",
    ),
    durables=(
        Durable(
            stream="CONV",
            name="flows-conversations",
            filter_subjects=(
                "conv.message_received.>",
                "conv.callback_received.>",
                "conv.contact_status_changed.>",
            ),
            description="messages, button presses and opened conversations (Viber): start "
            "flows and advance their runs",
            handlers=("switchboard.flows.runner:Runner.on_conversation",),
            decides=(
                "switchboard.flows.runner:conversation_input",
                "switchboard.flows.engine:decide",
            ),
            ack_wait_s=10,
        ),
        Durable(
            stream="CRM",
            name="flows-crm-events",
            filter_subjects=("crm.lead_stage_changed.>", "crm.contact_updated.>"),
            description="lead stage changes and added tags: start the flows they trigger",
            handlers=("switchboard.flows.runner:Runner.on_crm",),
            decides=("switchboard.flows.engine:decide",),
            ack_wait_s=10,
        ),
        Durable(
            stream="FLOW_TIMERS",
            name="flows-timers",
            filter_subjects=(
                "cmd.flows.fire_timer.>",
                "cmd.flows.fire_schedule.>",
                "cmd.flows.start_runs.>",
            ),
            description="delays and reply timeouts fired by their message schedules, "
            "scheduled flow starts, and the segment conversations the CRM hands back",
            handlers=("switchboard.flows.runner:Runner.on_timer",),
            decides=("switchboard.flows.engine:decide",),
            ack_wait_s=3,
        ),
    ),
    reads=(
        StreamRead(
            "FLOWS",
            message_get=True,
            why="flow definitions followed live; a conversation's last run record (message "
            "get) before each decision; run listings and histories",
        ),
        StreamRead(
            "CRM",
            message_get=True,
            why="who owns a customer's identity (last crm.identity_claimed of its claim key); "
            "a contact's attributes, tags, lead stage and conversations (ordered reads)",
        ),
        StreamRead(
            "FLOW_TIMERS",
            ephemeral_consumers=False,
            why="start-up checks that the timer stream allows message schedules",
        ),
    ),
    buckets=(
        BucketUse(
            "pii_keys",
            Access.READ,
            watch=True,
            why="data-subject keys: conversation events carry sealed personal data",
        ),
    ),
)

# The services that exist today, in one list: deployment artefacts are generated from it.
SERVICES: tuple[ServiceTopology, ...] = (INGEST, CRM, OUTBOUND, MTPROTO, ANALYTICS, FLOWS)


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

    deny: dict[str, str] = {}
    for owner in services:
        for d in owner.durables:
            for subject, verb in _durable_operations(d.stream, d.name).items():
                if subject in pub:
                    continue  # granted by name: its own durable
                if owner.name == service.name and verb != "delete":
                    continue
                if any(subject_matches(p, _probe(subject)) for p in pub):
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
        for rd in svc.runtime_durables:
            spec = streams.get(rd.stream)
            if spec is None:
                problems.append(f"{svc.name}: runtime durables on unknown stream {rd.stream}")
                continue
            if not any(subject_matches(p, _probe(rd.filter_subject)) for p in spec.subjects):
                problems.append(
                    f"{svc.name}: {rd.name} filters {rd.filter_subject} outside {rd.stream}"
                )
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
            spec = streams.get(e.stream)
            if spec is None:
                problems.append(f"{svc.name} erases from unknown stream {e.stream}")
                continue
            for subject in e.subjects:
                if not any(subject_matches(p, _probe(subject)) for p in spec.subjects):
                    problems.append(f"{svc.name} erases {subject}, which {e.stream} never holds")
        for b in svc.buckets:
            if b.bucket not in buckets:
                problems.append(f"{svc.name} uses unknown bucket {b.bucket}")
    durables = [(d.stream, d.name) for s in services for d in s.durables]
    if len(durables) != len(set(durables)):
        problems.append("a durable consumer is declared twice")
    return problems
