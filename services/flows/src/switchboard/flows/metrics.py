"""Prometheus metrics of the flows service (served on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from switchboard.events.catalog.flows import RunRecorded, RunStatus

RUNS_STARTED = Counter("flows_runs_started_total", "Runs started", ["flow_id", "trigger"])
RUNS_ENDED = Counter("flows_runs_ended_total", "Runs that reached their end", ["flow_id"])
HANDOFFS = Counter("flows_handoffs_total", "Runs handed to a person", ["flow_id"])
STEPS = Counter("flows_steps_total", "Steps taken", ["flow_id", "type", "outcome"])
CONFLICTS = Counter(
    "flows_append_conflicts_total", "Decisions re-made because the conversation moved meanwhile"
)
TIMER_LATENESS = Histogram(
    "flows_timer_lateness_seconds",
    "How late a delay or timeout was handled after its due time",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 30.0),
)


def observe(rec: RunRecorded) -> None:
    """Count what one recorded decision did."""
    if rec.input_kind.startswith("start:"):
        RUNS_STARTED.labels(rec.flow_id, rec.input_kind.split(":", 2)[1]).inc()
    for step in rec.steps:
        STEPS.labels(rec.flow_id, step.type, step.outcome.split(":")[0]).inc()
    if rec.status is RunStatus.ENDED:
        RUNS_ENDED.labels(rec.flow_id).inc()
    elif rec.status is RunStatus.HANDED_OFF:
        HANDOFFS.labels(rec.flow_id).inc()
