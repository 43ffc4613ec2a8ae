"""``runtime.lru.remember``: the one bounded most-recently-used cache of the services."""

from __future__ import annotations

from collections import OrderedDict

from switchboard.runtime.lru import remember


def test_the_least_recently_remembered_entry_goes_first() -> None:
    cache: OrderedDict[str, int] = OrderedDict()
    for key, value in (("a", 1), ("b", 2), ("c", 3)):
        remember(cache, key, value, capacity=3)
    remember(cache, "a", 10, capacity=3)  # a is now the newest
    remember(cache, "d", 4, capacity=3)
    assert list(cache.items()) == [("c", 3), ("a", 10), ("d", 4)]
