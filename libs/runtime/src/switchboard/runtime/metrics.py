"""Prometheus metrics shared by every service (business metrics live with each service)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter("switchboard_messages_consumed_total", "Messages processed", ["consumer"])
DEAD_LETTERED = Counter("switchboard_dead_lettered_total", "Messages sent to the DLQ", ["consumer"])
PROJECTED = Counter("switchboard_events_projected_total", "Events applied", ["projection"])
PROJECTION_LAG = Histogram(
    "switchboard_projection_batch_seconds", "Time to apply one batch", ["projection"]
)
PROJECTION_BEHIND = Gauge(
    "switchboard_projection_behind_messages",
    "Messages of its stream a projection has not applied yet (as of its last fetch)",
    ["projection"],
)
HTTP_REQUESTS = Counter(
    "switchboard_http_requests_total", "HTTP requests", ["route", "method", "status"]
)
