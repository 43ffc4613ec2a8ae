"""The vitals sampler on a real JetStream: dependency-up gauges from the readiness checks and
the backlog of the service's durables from their consumer info."""

from __future__ import annotations

from nats.js.api import ConsumerConfig
from prometheus_client import REGISTRY

from switchboard.events.topology import Durable
from switchboard.runtime.bus import Bus
from switchboard.runtime.http import Health
from switchboard.runtime.vitals import durables_of, sample_once


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_backlog_and_dependencies_are_sampled(bus: Bus) -> None:
    await bus.js.add_stream(name="VITALS", subjects=["vitals.>"])
    durable = Durable("VITALS", "vitals-reader", ("vitals.>",), "a test reader")
    await bus.js.add_consumer(
        "VITALS", ConsumerConfig(durable_name=durable.name, filter_subjects=["vitals.>"])
    )
    for i in range(7):
        await bus.js.publish(f"vitals.{i}", b"x")
    sub = await bus.js.pull_subscribe_bind(durable.name, "VITALS")
    (first,) = await sub.fetch(1)  # delivered, not acked
    assert first.data == b"x"

    async def failing() -> bool:
        return False

    health = Health()
    health.add("nats", bus.ready)
    health.add("postgres", failing)
    missing = Durable("VITALS", "not-created", ("vitals.>",), "never created")
    await sample_once(health, bus, (durable, missing))

    assert _value("switchboard_dependency_up", dependency="nats") == 1
    assert _value("switchboard_dependency_up", dependency="postgres") == 0
    labels = {"stream": "VITALS", "durable": "vitals-reader"}
    assert _value("switchboard_consumer_pending_messages", **labels) == 6
    assert _value("switchboard_consumer_ack_pending_messages", **labels) == 1
    missing_labels = {"stream": "VITALS", "durable": "not-created"}
    assert _value("switchboard_consumer_pending_messages", **missing_labels) is None


def test_each_service_samples_the_durables_its_topology_declares() -> None:
    assert [d.name for d in durables_of("ingest")] == ["ingest-normalizer"]
    assert "outbound-sends" in {d.name for d in durables_of("outbound")}
    assert durables_of("analytics") == ()
    assert durables_of("no-such-service") == ()
