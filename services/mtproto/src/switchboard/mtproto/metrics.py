"""The gateway's Prometheus metrics (served on ``/metrics`` with the runtime's own)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SESSIONS_OWNED = Gauge(
    "switchboard_mtproto_sessions_owned", "Sessions whose lease this instance holds"
)
SESSIONS_CONNECTED = Gauge(
    "switchboard_mtproto_sessions_connected", "Sessions this instance has connected to Telegram"
)
RECONNECTS = Counter(
    "switchboard_mtproto_reconnects_total", "Reconnects after a dropped connection"
)
LEASE_EVENTS = Counter(
    "switchboard_mtproto_lease_events_total",
    "Lease claims, take-overs, losses and hand-backs",
    ["event"],
)
FLOOD_WAITS = Counter(
    "switchboard_mtproto_flood_waits_total", "FLOOD_WAIT answers from Telegram", ["operation"]
)
FLOOD_WAIT_SECONDS = Counter(
    "switchboard_mtproto_flood_wait_seconds_total", "Seconds Telegram asked to wait", ["operation"]
)
MESSAGES = Counter(
    "switchboard_mtproto_messages_total",
    "Messages published as conv events (rate() gives messages per second)",
    ["source"],
)
DUPLICATES = Counter(
    "switchboard_mtproto_duplicates_total", "Messages not republished: already published"
)
BACKFILL_MESSAGES = Counter(
    "switchboard_mtproto_backfill_messages_total", "Messages published by backfills"
)
BACKFILLS_ACTIVE = Gauge(
    "switchboard_mtproto_backfills_running", "Backfill jobs running on this instance"
)
BACKFILL_JOBS = Counter(
    "switchboard_mtproto_backfill_jobs_total", "Backfill jobs that ended", ["outcome"]
)
SENDS = Counter("switchboard_mtproto_sends_total", "Sends as a user", ["outcome"])
LOGINS = Counter("switchboard_mtproto_login_steps_total", "Login steps", ["step", "outcome"])
RPC_LATENCY = Histogram(
    "switchboard_mtproto_rpc_seconds",
    "Latency of MTProto requests to Telegram, by TL method (answered or failed)",
    ["method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RPC_ERRORS = Counter(
    "switchboard_mtproto_rpc_errors_total",
    "Failed MTProto requests by TL method and RPC error name (FLOOD_WAIT_X, ...) or, when "
    "no answer came, the exception's type",
    ["method", "error"],
)
UPDATE_QUEUE_DEPTH = Gauge(
    "switchboard_mtproto_update_queue_depth",
    "Live updates received from Telegram and not yet handled, over this instance's sessions",
)
