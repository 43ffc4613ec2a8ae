"""The runtime's aggregate reads on real NATS: a delivery lost on the way (pushed to a pull
request that had already expired, which nothing acknowledges) does not leave a hole in the
history read back; appends with a stale version conflict."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.events.catalog.crm import ContactUpdated
from switchboard.runtime.aggregates import ConflictError, append_expecting, read_filter
from switchboard.runtime.bus import Bus

FILTER = "crm.*.*.ct_agg"


async def _history(bus: Bus, n: int) -> None:
    version = 0
    for i in range(n):
        version = await append_expecting(
            bus, ContactUpdated(contact_id="ct_agg", note=f"n{i}"), FILTER, version,
            aggregate="ct_agg",
        )  # fmt: skip


async def test_a_lost_delivery_is_read_again_not_skipped(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = await Bus.connect(nats_url, name="agg")
    try:
        await bus.provision()
        await _history(bus, 5)
        real = bus.js.pull_subscribe
        lost = []

        async def losing(*args: Any, **kwargs: Any) -> Any:
            sub = await real(*args, **kwargs)
            fetch = sub.fetch

            async def fetch_losing_one(*a: Any, **kw: Any) -> Any:
                msgs = await fetch(*a, **kw)
                if not lost and len(msgs) > 2:
                    lost.append(msgs[1].metadata.sequence.stream)
                    return [msgs[0], *msgs[2:]]  # the second one never arrives
                return msgs

            sub.fetch = fetch_losing_one
            return sub

        monkeypatch.setattr(bus.js, "pull_subscribe", losing)
        history = await read_filter(bus, "CRM", FILTER)
        assert lost
        notes = [s.decoded.model.note for s in history]  # type: ignore[attr-defined]
        assert notes == ["n0", "n1", "n2", "n3", "n4"]
        assert [s.seq for s in history] == sorted(s.seq for s in history)
    finally:
        await bus.close()


async def test_a_stale_version_conflicts(nats_url: str) -> None:
    bus = await Bus.connect(nats_url, name="agg")
    try:
        await bus.provision()
        await _history(bus, 2)
        with pytest.raises(ConflictError):
            await append_expecting(
                bus, ContactUpdated(contact_id="ct_agg", note="late"), FILTER, 1, aggregate="x"
            )
    finally:
        await bus.close()
