"""A service whose sends or timers wait as JetStream message schedules refuses to start, in
one sentence, on a stream that does not allow them (provisioned by an older version or by
hand): every schedule published there would be refused."""

from __future__ import annotations

import pytest
from nats.js.api import StreamConfig

from switchboard.events.streams import FLOW_TIMERS, OUTBOUND
from switchboard.runtime.bus import Bus
from switchboard.runtime.schedules import require_schedules
from switchboard.runtime.settings import ConfigError


async def test_a_stream_without_message_schedules_is_refused_in_one_sentence(bus: Bus) -> None:
    for stream in (OUTBOUND.name, FLOW_TIMERS.name):  # as the catalog provisions them
        await require_schedules(bus, stream, "svc", "what waits")
    await bus.js.add_stream(StreamConfig(name="OLD", subjects=["old.>"]))
    with pytest.raises(ConfigError) as refused:
        await require_schedules(bus, "OLD", "outbound", "sends scheduled ahead")
    assert str(refused.value) == (
        "outbound: stream OLD must allow message schedules "
        "(allow_msg_schedules, nats-server >= 2.12) for sends scheduled ahead."
    )
