"""The lease rules as pure functions: when a key may be claimed, taken over or reclaimed,
how a view keeps first sightings, how instances split the sessions."""

from __future__ import annotations

from switchboard.mtproto.leases import (
    ClaimAction,
    LeaseValue,
    LeaseView,
    Observed,
    claim_action,
    expired,
    fair_share,
    hrw_score,
    instance_key,
    session_key,
)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _value(owner: str = "b-1", nonce: str = "n1", ttl: float = 10.0) -> LeaseValue:
    return LeaseValue(owner=owner, nonce=nonce, beat=0, ttl_s=ttl)


def test_a_revision_expires_only_after_a_full_ttl_on_the_observers_clock() -> None:
    seen = Observed(revision=7, value=_value(ttl=10), seen_at=100.0)
    assert not expired(seen, now=109.9, ttl=10)
    assert expired(seen, now=110.0, ttl=10)
    # the longer of our TTL and the holder's wins: a holder with a longer lease is safe
    assert not expired(Observed(7, _value(ttl=20), 100.0), now=115.0, ttl=10)
    assert not expired(seen, now=115.0, ttl=20)


def test_claim_actions() -> None:
    me, active = "a-1", {"mine"}
    kw = {"owner": me, "active_nonces": active, "ttl": 10.0}
    assert claim_action(None, now=0, **kw) == ClaimAction.CREATE  # type: ignore[arg-type]
    other = Observed(3, _value("b-1"), seen_at=100.0)
    assert claim_action(other, now=105, **kw) is None  # type: ignore[arg-type]
    assert claim_action(other, now=110, **kw) == ClaimAction.TAKE_OVER  # type: ignore[arg-type]
    held = Observed(3, _value(me, "mine"), seen_at=0.0)
    assert claim_action(held, now=1000, **kw) is None  # type: ignore[arg-type]
    stale = Observed(3, _value(me, "old"), seen_at=100.0)  # ours, unused: reclaim at once
    assert claim_action(stale, now=100, **kw) == ClaimAction.RECLAIM  # type: ignore[arg-type]
    garbage = Observed(3, None, seen_at=100.0)
    assert claim_action(garbage, now=105, **kw) is None  # type: ignore[arg-type]
    assert claim_action(garbage, now=110, **kw) == ClaimAction.TAKE_OVER  # type: ignore[arg-type]


def test_view_keeps_the_first_sighting_of_a_revision_and_forgets_deleted_keys() -> None:
    clock = _Clock()
    view = LeaseView(kv=None, clock=clock)  # type: ignore[arg-type]
    key = session_key("s1")
    view.apply(key, 5, _value().encode(), None)
    clock.now = 150.0
    view.apply(key, 5, _value().encode(), None)  # a restarted watch replays it
    assert view.get(key) == Observed(5, _value(), 100.0)
    view.apply(key, 4, _value().encode(), None)  # an older revision never wins
    kept = view.get(key)
    assert kept is not None
    assert kept.revision == 5
    view.apply(key, 6, _value().encode(), None)
    assert view.get(key) == Observed(6, _value(), 150.0)
    view.apply(key, 7, None, "DEL")
    assert view.get(key) is None
    view.apply(key, 8, b"not json", None)
    assert view.get(key) == Observed(8, None, 150.0)


def test_live_instances_are_those_renewed_within_the_ttl() -> None:
    clock = _Clock()
    view = LeaseView(kv=None, clock=clock)  # type: ignore[arg-type]
    view.apply(instance_key("a-1"), 1, _value("a-1").encode(), None)
    clock.now = 105.0
    view.apply(instance_key("b.2"), 2, _value("b.2").encode(), None)
    view.apply(session_key("s1"), 3, _value("c-3").encode(), None)
    assert view.live_instances(10.0) == {"a-1", "b.2"}
    clock.now = 110.0
    assert view.live_instances(10.0) == {"b.2"}
    assert instance_key("b.2") == "mtproto.instance.b_2"


def test_fair_share_splits_evenly_and_respects_the_maximum() -> None:
    assert fair_share(30, 3, 100) == 10
    assert fair_share(30, 2, 100) == 15
    assert fair_share(31, 3, 100) == 11
    assert fair_share(30, 1, 12) == 12
    assert fair_share(0, 3, 100) == 0
    assert fair_share(5, 0, 100) == 5


def test_rendezvous_hashing_spreads_first_choices() -> None:
    owners = ["a", "b", "c"]
    firsts = {
        max(owners, key=lambda o, s=f"s{i}": hrw_score(s, o))  # type: ignore[misc]
        for i in range(30)
    }
    assert firsts == set(owners)


def test_lease_values_round_trip_and_garbage_is_none() -> None:
    value = LeaseValue(owner="a", nonce="n", beat=3, ttl_s=6.0, expires_at="x")
    assert LeaseValue.decode(value.encode()) == value
    assert LeaseValue.decode(b"{}") is None
    assert LeaseValue.decode(None) is None
