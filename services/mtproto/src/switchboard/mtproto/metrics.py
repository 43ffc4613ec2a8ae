"""The gateway's Prometheus metrics (served on ``/metrics`` with the runtime's own)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
