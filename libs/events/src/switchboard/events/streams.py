"""The JetStream streams and KV buckets of DESIGN §2, declared once.

Names and subjects are the contract; limits are defaults that deployments may override.
Services provision these idempotently at start-up; ``deploy/k8s`` renders them as NACK
resources from the same declarations.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DAY = 24 * 3600


class Retention(StrEnum):
    LIMITS = "limits"
    WORK_QUEUE = "workqueue"
    INTEREST = "interest"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One JetStream stream."""

    name: str
    subjects: tuple[str, ...]
    retention: Retention
    max_age_s: int  # 0 = forever
    description: str
    duplicate_window_s: int = 120
    max_msg_size: int = 4 * 1024 * 1024
    replicas: int = 1
    deny_delete: bool = False
    allow_direct: bool = True
    allow_msg_schedules: bool = False  # JetStream message scheduling (nats-server >= 2.12)


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """One JetStream KV bucket."""

    name: str
    description: str
    ttl_s: int = 0  # 0 = no expiry
    history: int = 1
    replicas: int = 1


RAW = StreamSpec(
    "RAW",
    ("raw.>",),
    Retention.LIMITS,
    7 * DAY,
    "verified provider payloads exactly as received (re-normalizable)",
)
CONV = StreamSpec(
    "CONV",
    ("conv.>",),
    Retention.LIMITS,
    365 * DAY,
    "normalized conversation events, all channels",
)
CRM = StreamSpec(
    "CRM",
    ("crm.>",),
    Retention.LIMITS,
    0,
    "CRM aggregate events (contacts, leads): the source of truth",
    deny_delete=True,
)
OUTBOUND = StreamSpec(
    "OUTBOUND",
    ("cmd.outbound.>",),
    Retention.WORK_QUEUE,
    7 * DAY,
    "send and campaign commands; sends scheduled ahead wait as message schedules",
    allow_msg_schedules=True,
)
CRM_COMMANDS = StreamSpec(
    "CRM_COMMANDS", ("cmd.crm.>",), Retention.WORK_QUEUE, 7 * DAY,
    "commands to the CRM aggregates (contacts, leads)",
)  # fmt: skip
DELIVERY = StreamSpec(
    "DELIVERY",
    ("delivery.>",),
    Retention.LIMITS,
    365 * DAY,
    "what happened to each outbound message",
)
MTPROTO = StreamSpec(
    "MTPROTO",
    ("mtproto.>", "cmd.mtproto.>"),
    Retention.LIMITS,
    90 * DAY,
    "MTProto session lifecycle, channel posts, backfill progress",
)
FLOWS = StreamSpec(
    "FLOWS",
    ("flows.>",),
    Retention.LIMITS,
    0,
    "flow documents (every revision) and the event-sourced runs of the flows service",
    deny_delete=True,
)
FLOW_TIMERS = StreamSpec(
    "FLOW_TIMERS",
    ("cmd.flows.>",),
    Retention.WORK_QUEUE,
    90 * DAY,
    "flow delays and reply timeouts: message schedules the server fires at their time",
    allow_msg_schedules=True,
)
DLQ = StreamSpec(
    "DLQ",
    ("dlq.>",),
    Retention.LIMITS,
    30 * DAY,
    "poison messages with the error and the original headers",
)

STREAMS: tuple[StreamSpec, ...] = (
    RAW, CONV, CRM, CRM_COMMANDS, OUTBOUND, DELIVERY, MTPROTO, FLOWS, FLOW_TIMERS, DLQ,
)  # fmt: skip

ACCOUNTS = BucketSpec("accounts", "channel accounts; secrets encrypted", history=5)
RATELIMIT = BucketSpec("ratelimit", "shared rate-limit state and pauses", ttl_s=3600)
LEASES = BucketSpec("leases", "single-owner leases (MTProto sessions)", ttl_s=30)

DEDUP = BucketSpec(
    "dedup", "event ids already published, beyond the streams' duplicate window", ttl_s=8 * DAY
)

SENDS = BucketSpec(
    "sends", "outbound attempt records: what happened to each message_id", ttl_s=8 * DAY, history=1
)

API_KEYS = BucketSpec(
    "api_keys",
    "API keys by key id: workspace, scopes, expiry, last use and a keyed hash (never the key)",
    history=1,
)
# Entries outlive their idle timeout only by this TTL (refreshed on use at most once a
# minute); the dashboard also checks idle and absolute lifetimes itself.
DASHBOARD_SESSIONS = BucketSpec(
    "dashboard_sessions",
    "dashboard sign-ins by hashed session id, and login attempt counters",
    ttl_s=12 * 3600,
)

# One key per running instance, written once a minute (runtime.servertime); the TTL drops
# the keys of instances that are gone.
CLOCK = BucketSpec(
    "clock",
    "probes of the server's clock: each instance reads the time JetStream stamps on its key",
    ttl_s=600,
)

PII_KEYS = BucketSpec(
    "pii_keys",
    "per-data-subject keys of personal fields in events; erasure purges them "
    "(crypto-shredding, switchboard.runtime.pii)",
    history=1,
)

CALENDAR = BucketSpec(
    "calendar",
    "content calendar of outbound: post templates (every version) and scheduled posts, "
    "per workspace",
    history=1,
)

BUCKETS: tuple[BucketSpec, ...] = (
    ACCOUNTS,
    RATELIMIT,
    LEASES,
    DEDUP,
    SENDS,
    API_KEYS,
    DASHBOARD_SESSIONS,
    CLOCK,
    PII_KEYS,
    CALENDAR,
)


def stream_for_subject(subject: str) -> StreamSpec:
    """The stream that captures ``subject`` (first matching declaration)."""
    for spec in STREAMS:
        for pattern in spec.subjects:
            if subject_matches(pattern, subject):
                return spec
    raise LookupError(f"no stream captures subject {subject!r}")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` one token, ``>`` one or more trailing tokens."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


def dlq_subject(original_subject: str) -> str:
    """Where a poison message goes: ``dlq.<original subject>``."""
    return f"dlq.{original_subject}"
