"""Start-up checks of the settings (one sentence naming the setting), and the flood-wait
policy: short waits held, long ones deferred, every one counted and published."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.events.catalog.mtproto import FloodWaited
from switchboard.mtproto.floods import DeferredError, FloodPolicy
from switchboard.mtproto.ports import FloodWaitError
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.runtime.settings import ConfigError, load_settings

from .mtproto_support import KEY


def _load(**overrides: Any) -> MtprotoSettings:
    return load_settings(MtprotoSettings, **{"encryption_keys": KEY, **overrides})


def test_defaults_and_derived_timings() -> None:
    s = _load()
    assert s.http_port == 8083
    assert s.adapter == "telethon"
    assert (s.heartbeat, s.margin) == (6.0, 6.0)
    assert _load(lease_ttl_s=5).heartbeat == 1.0


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"adapter": "sandbox"}, "SWITCHBOARD_MTPROTO_SANDBOX_URL"),
        ({"lease_ttl_s": 31}, "SWITCHBOARD_MTPROTO_LEASE_TTL_S"),
        ({"lease_ttl_s": 5, "heartbeat_s": 3, "lease_margin_s": 2},
         "SWITCHBOARD_MTPROTO_LEASE_MARGIN_S"),
        ({"encryption_keys": "nonsense"}, "SWITCHBOARD_MTPROTO_ENCRYPTION_KEYS"),
    ],
)  # fmt: skip
def test_bad_settings_stop_start_up_naming_the_setting(
    overrides: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(**overrides)
    assert named in str(caught.value)


async def test_flood_policy_holds_short_waits_and_defers_long_ones() -> None:
    events: list[FloodWaited] = []
    slept: list[float] = []

    async def emit(event: FloodWaited) -> None:
        events.append(event)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = FloodPolicy("s1", hold_max_s=10, emit=emit, sleep=sleep)
    answers: list[Any] = [FloodWaitError(3), FloodWaitError(5), "page"]

    async def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    assert await policy.call("get_history", call) == "page"
    assert [round(s) for s in slept] == [3, 5]
    assert [(e.seconds, e.action) for e in events] == [(3, "wait"), (5, "wait")]

    async def long_wait() -> str:
        raise FloodWaitError(60)

    with pytest.raises(DeferredError) as deferred:
        await policy.call("get_history", long_wait)
    assert deferred.value.seconds == 60
    assert events[-1].action == "deferred"
    assert events[-1].resume_at == deferred.value.resume_at
    assert len(slept) == 2  # nothing held for the long one
