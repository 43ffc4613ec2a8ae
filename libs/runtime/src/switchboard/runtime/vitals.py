"""The gauges alerts need and no handler can set: can this process reach NATS and Postgres,
and how far behind are the durable consumers it shares (deploy/k8s/base/alerts).

A sampler reads them every few seconds: the readiness checks of the service's ``Health``
(the same ones ``/readyz`` runs) and the consumer info of the service's durables as the
topology declares them (its NATS user may read exactly those). Every instance reports the
same durables, so the alert rules aggregate with ``max``.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Gauge

from switchboard.events.topology import SERVICES, Durable
from switchboard.runtime.bus import Bus
from switchboard.runtime.http import Health
from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import pause

log = get_logger(__name__)

DEPENDENCY_UP = Gauge(
    "switchboard_dependency_up",
    "1 when this process reaches the dependency (the /readyz check of the same name), else 0",
    ["dependency"],
)
CONSUMER_PENDING = Gauge(
    "switchboard_consumer_pending_messages",
    "Messages of the stream a durable consumer has not delivered yet (its backlog)",
    ["stream", "durable"],
)
CONSUMER_ACK_PENDING = Gauge(
    "switchboard_consumer_ack_pending_messages",
    "Messages a durable consumer delivered that are not acknowledged yet",
    ["stream", "durable"],
)


def durables_of(service: str) -> tuple[Durable, ...]:
    """The shared durable consumers the topology declares for ``service`` (none if unknown)."""
    return next((s.durables for s in SERVICES if s.name == service), ())


async def sample_once(health: Health, bus: Bus, durables: tuple[Durable, ...]) -> None:
    """Set every vital gauge from one round of checks; a failed read leaves its gauge as is
    (the dependency-up gauge already says the bus is unreachable)."""
    for name, ok in (await health.results()).items():
        DEPENDENCY_UP.labels(name).set(1 if ok else 0)
    for durable in durables:
        try:
            info = await bus.js.consumer_info(durable.stream, durable.name, timeout=2.0)
        except Exception as exc:  # not created yet, or the bus is away: try next round
            log.debug("consumer info failed", durable=durable.name, error=repr(exc))
            continue
        CONSUMER_PENDING.labels(durable.stream, durable.name).set(info.num_pending or 0)
        CONSUMER_ACK_PENDING.labels(durable.stream, durable.name).set(info.num_ack_pending or 0)


async def sample_vitals(
    health: Health, bus: Bus, service: str, stop: asyncio.Event, every: float = 10.0
) -> None:
    """Sample until ``stop``, every ``every`` seconds."""
    durables = durables_of(service)
    while not stop.is_set():
        await sample_once(health, bus, durables)
        await pause(stop, every)
