"""Pure logic of the send path: the limiter's key state and holds, how late a send may have
been counted and how far that holds the next window back, a campaign's totals, and a
conversion command as a Meta CAPI event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from nats.js.kv import KeyValue

from switchboard.events.catalog.outbound import SendConversion
from switchboard.outbound.campaigns.state import CampaignState
from switchboard.outbound.conversions import capi_event
from switchboard.outbound.limits import SendLimits
from switchboard.outbound.pacing import Holds, RoundTrips, lateness, push
from switchboard.outbound.ratelimit import Limit, LimitKey, SharedLimiter, _State, kv_key


def test_key_state_round_trips_and_drops_ended_holds() -> None:
    state = _State(100.5, ((101.0, 101.2), (90.0, 90.5)))
    again = _State.decode(state.encode(now=95.0))
    assert again == _State(100.5, ((101.0, 101.2),))  # the hold that ended is gone
    assert _State.decode(b"12.25") == _State(12.25)
    assert _State.decode(None) == _State()


def test_a_hold_moves_the_first_slot_that_reaches_it_and_only_that_one() -> None:
    state = _State(0.0, ((10.0, 10.05), (10.0343, 10.064)))
    assert state.apply(9.0, 0.017) == (9.0, state.holds)  # not reached yet
    slot, left = state.apply(10.0, 0.017)
    assert slot == 10.05  # the larger need of the holds it reaches
    assert left == ((10.0343, 10.064),)
    nxt, rest = _State(0.0, left).apply(slot + 0.0343, 0.017)
    assert nxt == pytest.approx(10.0843)  # already later than the second hold asks
    assert rest == ()


def test_lateness_counts_leaving_late_and_an_unusually_slow_answer() -> None:
    assert lateness(slot=10.0, left_at=10.004, answered_at=10.006, baseline=0.002) == (
        pytest.approx(0.004)
    )
    # left on time, but the answer took 50 ms more than the fastest: maybe counted late
    assert lateness(10.0, 10.0, 10.052, 0.002) == pytest.approx(0.050)
    trips = RoundTrips(warm=3)
    # the fastest ever, however many slow ones follow it (a recent-only baseline rose
    # under load and hid lateness behind a slow usual round trip)...
    rtts = (0.010, 0.004, *[0.030] * 100, 0.020)
    assert [trips.baseline("bot", r) for r in rtts][-3:] == [0.004, 0.004, 0.004]
    # ...once there are enough of them: the first round trips of a process are all slow
    assert [trips.baseline("other", r) for r in (0.030, 0.030, 0.030)] == [0.0, 0.0, 0.030]


def test_push_is_the_excess_over_half_the_margin_and_at_most_a_window() -> None:
    bot = LimitKey("bot", Limit(30))
    assert push(bot, 0.010, margin=0.03) == 0.0  # within the 15 ms half-margin
    assert push(bot, 0.040, margin=0.03) == pytest.approx(0.025)
    assert push(bot, 5.0, margin=0.03) == 1.0  # a window clears whatever happened
    group = LimitKey("group", Limit(20, 60))
    assert push(group, 0.5, margin=0.03) == 0.0  # 0.9 s of room in a 60 s window


async def test_every_answer_is_written_soon_and_only_a_late_one_at_once() -> None:
    """An answer on time is noted for the instance's next lease of the account (answered,
    so the window counts the send from its lateness), or a report writes it within
    ``report_within`` if no lease comes first; lateness seen before the call, with no
    answer yet, is not an answer."""
    kv = cast(KeyValue, None)
    limiter = SharedLimiter(kv, clock=lambda: 100.0, margin=0.03, report_within=3600)
    holds = Holds(limiter)
    bot = LimitKey("bot", Limit(30))
    limits = SendLimits(bot, None, "bot", "bot.to.1")
    covered = holds.note(limits, 100.0, 0.004)  # woke up 4 ms late: within half the margin
    assert covered == 0.004
    assert limiter._late == {}
    assert holds.note(limits, 100.0, 0.003, covered, answered=True) == 0.004
    assert limiter._late == {kv_key("bot"): [(100.0, 0.004, True)]}
    assert set(limiter._reports) == {kv_key("bot")}  # the report, unless a lease carries it
    assert holds.pending == {}  # nothing written at once
    assert holds.writing == {}
    await limiter.close()
    assert limiter._reports == {}


def test_a_campaign_total_is_known_once_every_batch_to_the_final_one_arrived() -> None:
    state = CampaignState(
        campaign_id="c", workspace_id="w", created_at=datetime.now(UTC), batches={0: 5, 2: 7}
    )
    assert (state.received, state.total) == (12, None)
    state.final_batch = 2
    assert state.total is None  # batch 1 is missing
    state.batches[1] = 3
    assert state.total == 15


def _conversion(**fields: Any) -> SendConversion:
    """A Lead of pixel 1 at noon on 2026-11-20, with ``fields`` over those."""
    base = {
        "conversion_id": "x",
        "account": "1",
        "event_name": "Lead",
        "event_time": "2026-11-20T12:00:00Z",
        "event_id": "e",
    }
    return SendConversion.model_validate({**base, **fields})


def test_a_conversion_becomes_a_capi_event_with_plain_user_data() -> None:
    cmd = _conversion(
        user_data={"em": ["A@B.co"], "fn": "Ann", "external_id": ["c:1"]},
        value=5,
        currency="EUR",
        custom_data={"source": "crm"},
    )
    event = capi_event(cmd).to_json()
    assert event["event_time"] == int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp())
    assert event["user_data"] == {"em": ["A@B.co"], "fn": "Ann", "external_id": ["c:1"]}
    assert event["custom_data"] == {"source": "crm", "value": 5.0, "currency": "EUR"}
    assert event["event_id"] == "e"
    assert "event_source_url" not in event


def test_a_click_to_whatsapp_conversion_names_its_channel_and_keeps_the_click_plain() -> None:
    cmd = _conversion(
        event_name="Purchase",
        action_source="business_messaging",
        messaging_channel="whatsapp",
        user_data={"ctwa_clid": "ARAkLkA8r", "external_id": ["c:1"]},
    )
    event = capi_event(cmd).to_json()
    assert (event["action_source"], event["messaging_channel"]) == (
        "business_messaging",
        "whatsapp",
    )
    assert event["user_data"]["ctwa_clid"] == "ARAkLkA8r"


def test_rate_limit_keys_of_a_chat_are_keyed_with_the_identity_pepper() -> None:
    """A chat id is a phone number on WhatsApp: its key in the ``ratelimit`` bucket must not
    be a hash anyone can recompute from the number."""
    import hashlib

    from switchboard.events.ids import stable_hash
    from switchboard.outbound.ratelimit import pause_key
    from switchboard.runtime import identity

    name = "whatsapp.15551230000.to.15557654321"
    try:
        identity.configure("pepper-one-0123456789")
        first, paused = kv_key(name), pause_key(name)
        identity.configure("pepper-two-0123456789")
        assert (kv_key(name), pause_key(name)) != (first, paused)
    finally:
        identity.configure(identity.DEV_PEPPER)
    for digest in (stable_hash(name), hashlib.sha256(name.encode()).hexdigest()):
        assert digest[:20] not in first
        assert digest[:20] not in paused
