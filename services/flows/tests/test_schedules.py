"""Schedule triggers, decided purely: the next fire, which fires are due for the published
flows, and a fire for a revision no longer published is void."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from switchboard.events.streams import FLOW_TIMERS
from switchboard.flows.document import InvalidFlowError, ScheduleTrigger, validate
from switchboard.flows.schedules import FIRE_HOP, due_fires, next_fire, segment_request, still_due
from switchboard.flows.triggers import Published, event_start

T0 = datetime(2026, 12, 24, 9, 0, tzinfo=UTC)


def trigger(**kw: Any) -> ScheduleTrigger:
    return ScheduleTrigger.model_validate({"type": "schedule", "at": T0.isoformat(), **kw})


def test_the_next_fire_is_strictly_after_now() -> None:
    once, daily = trigger(), trigger(every_s=86400)
    assert next_fire(once, T0 - timedelta(seconds=1)) == T0
    assert next_fire(once, T0) is None  # a one-off already fired
    assert next_fire(daily, T0) == T0 + timedelta(days=1)
    assert next_fire(daily, T0 + timedelta(days=2, hours=3)) == T0 + timedelta(days=3)


def flow(flow_id: str, revision: int, triggers: list[dict[str, Any]]) -> Published:
    doc = validate(
        {"name": flow_id, "triggers": triggers, "start": "a",
         "steps": {"a": {"type": "end", "text": "hi"}}}
    )  # fmt: skip
    return Published(flow_id, revision, doc)


def test_due_fires_and_void_ones() -> None:
    every = {"type": "schedule", "at": T0.isoformat(), "every_s": 3600}
    flows = [flow("f1", 2, [{"type": "start"}, every]), flow("f2", 1, [{"type": "start"}])]
    (fire,) = due_fires(flows, T0 + timedelta(minutes=30))
    assert (fire.flow_id, fire.revision, fire.trigger) == ("f1", 2, 1)
    assert fire.due_at == T0 + timedelta(hours=1)
    assert still_due(fire, flows)
    assert not still_due(fire, [flow("f1", 3, [{"type": "start"}, every])])  # republished
    assert not still_due(fire, [])  # archived
    assert event_start(flows, "schedule", "f1") is not None
    assert event_start(flows, "schedule", "f2") is None


def test_a_schedule_needs_a_timezone_and_a_sane_period() -> None:
    import pytest

    from switchboard.flows.document import InvalidFlowError

    for bad, path in (
        ({"type": "schedule", "at": "2026-12-24T09:00:00"}, "$.triggers[0].at"),
        ({"type": "schedule", "at": T0.isoformat(), "every_s": 5}, "$.triggers[0].every_s"),
    ):
        with pytest.raises(InvalidFlowError) as exc:
            validate({"name": "x", "triggers": [bad], "start": "a",
                      "steps": {"a": {"type": "end"}}})  # fmt: skip
        assert [p["path"] for p in exc.value.problems] == [path]


def test_a_segment_schedule_asks_the_crm_to_expand_it_under_the_fires_id() -> None:
    segment = {"channel": "telegram", "tags": ["vip"], "stage": "qualified"}
    plain = {"type": "schedule", "at": T0.isoformat()}
    flows = [flow("f1", 3, [plain, {**plain, "segment": segment}])]
    first, second = due_fires(flows, T0 - timedelta(minutes=1))
    assert segment_request(first, flows) is None  # no segment: the conversations flows knows
    request = segment_request(second, flows)
    assert request is not None
    assert (request.request_id, request.flow_id, request.revision) == (
        second.deterministic_id(),
        "f1",
        3,
    )
    assert request.segment.model_dump(mode="json", exclude_none=True) == {
        "channel": "telegram",
        "tags": ["vip"],
        "stage": "qualified",
    }
    assert segment_request(second, flows) == request  # every instance asks the same


def test_a_schedule_segment_is_validated_with_its_path() -> None:
    bad = {"type": "schedule", "at": T0.isoformat(), "segment": {"channel": "fax"}}
    with pytest.raises(InvalidFlowError) as err:
        validate(
            {"name": "x", "triggers": [bad], "start": "a",
             "steps": {"a": {"type": "end", "text": "hi"}}}
        )  # fmt: skip
    assert any("segment" in p["path"] for p in err.value.problems)


def test_a_fire_is_held_for_less_than_its_stream_keeps_a_message() -> None:
    """Each hop is a new schedule message; it must outlive the hop with room for an outage
    of the service as long again."""
    assert timedelta(seconds=FLOW_TIMERS.max_age_s) > 2 * FIRE_HOP
