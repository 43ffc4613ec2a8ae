"""Bounded most-recently-used caches kept in an ``OrderedDict``: one way to remember an entry
and forget the oldest, for the process-local caches of the services (resolved senders, seen
rate-limit states, poison-message budgets, file ids, idempotency sightings).

Written here because the standard library has no bounded mapping (``functools.lru_cache``
caches a function's results, not entries a caller puts and reads), and the one library that
has it at hand, ``cachetools``, is only a transitive dependency and ships no types."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(cache: OrderedDict[K, V], key: K, value: V, capacity: int) -> None:
    """Store ``key`` as the most recently used entry, forgetting the oldest beyond
    ``capacity``."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > capacity:
        cache.popitem(last=False)
