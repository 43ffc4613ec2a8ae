"""Provisioning on a cluster whose peers are still joining (found under a loaded machine:
``no suitable peers for placement`` was read as "the stream exists", and the update that
followed failed with 404)."""

from __future__ import annotations

from typing import Any

from nats.js.errors import BadRequestError, NotFoundError

from switchboard.runtime.bus import Bus


class _JetStream:
    """Answers add_stream with the cluster's placement error ``failures`` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.added: list[str] = []

    async def add_stream(self, config: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise BadRequestError(
                code=400, err_code=10005, description="no suitable peers for placement"
            )
        self.added.append(config.name)

    async def update_stream(self, config: Any) -> None:
        raise NotFoundError(code=404, err_code=10059, description="stream not found")

    async def key_value(self, bucket: str) -> object:
        return object()


async def test_no_suitable_peers_is_retried_until_the_stream_is_created() -> None:
    js = _JetStream(failures=2)
    bus = Bus(nc=None, js=js, source="test")  # type: ignore[arg-type]
    await bus.provision(replicas=3, patience_s=30)
    assert "RAW" in js.added  # created once the peers could take it, not given up on
