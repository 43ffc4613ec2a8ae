"""The production NATS values state the limits the services depend on."""

from __future__ import annotations

import yaml

from switchboard.events.k8s import MAX_PAYLOAD, nats_values_yaml


def test_max_payload_and_fsync_are_explicit() -> None:
    values = yaml.safe_load(nats_values_yaml())
    # ingest sizes its webhook body limit from the server's max_payload
    assert values["config"]["merge"]["max_payload"] == MAX_PAYLOAD == 1024 * 1024
    # an acknowledged write is on disk on every replica (docs/deploy.md: its cost)
    assert values["config"]["jetstream"]["merge"]["sync_interval"] == "always"
