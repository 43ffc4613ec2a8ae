"""The runtime's aggregate reads on real NATS: a delivery lost on the way (pushed to a pull
request that had already expired, which nothing acknowledges) does not leave a hole in the
history read back; appends with a stale version conflict."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from switchboard.events.catalog.crm import ContactUpdated
from switchboard.runtime.aggregates import ConflictError, append_expecting, read_filter
from switchboard.runtime.bus import Bus
from switchboard.runtime.delivery.pull import BatchPull, delivery_seq, status_of, stream_seq

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
        real = BatchPull._on_msg
        lost = []

        async def losing_one(pull: BatchPull, msg: Msg) -> None:
            if not lost and status_of(msg) is None and delivery_seq(msg) == 2:
                lost.append(stream_seq(msg))
                return  # the second delivery never arrives
            await real(pull, msg)

        monkeypatch.setattr(BatchPull, "_on_msg", losing_one)
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
