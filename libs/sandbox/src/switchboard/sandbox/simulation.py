"""What the messaging fakes' traffic generators share: the mix of kinds they make, and
simulated users of one account who produce items at a traffic request's pace.

Each provider keeps only how its users act (`Simulation.make`) and its kinds."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from switchboard.sandbox.traffic import Generated, TrafficRequest, check_mix, drive

A = TypeVar("A")
G = TypeVar("G", bound=Generated)


@dataclass(frozen=True)
class Mix:
    """The kinds a generator makes, their weights when a request gives none, and what the
    kinds are called in errors."""

    default: Mapping[str, float]
    kinds: tuple[str, ...]
    what: str

    def check(self, mix: Mapping[str, float] | None) -> dict[str, float]:
        """A usable mix: known kinds, non-negative weights, at least one positive."""
        return check_mix(mix, self.default, self.kinds, self.what)


class Simulation(Generic[G]):
    """Simulated users of one account: a random source seeded by the request's seed and
    `seed_key` (the account), a pool of at most `request.users` of them, and one item made
    per kind drawn from the mix."""

    mix: ClassVar[Mix]

    def __init__(self, request: TrafficRequest, seed_key: str) -> None:
        self.request = request
        self.rng = random.Random(f"{request.seed}:{seed_key}")
        self.pool_size = max(1, request.users)

    def make(self, kind: str) -> G:
        """One item of `kind`, already delivered to the account's webhook queue."""
        raise NotImplementedError

    async def run(self, on_item: Callable[[G], None] | None = None) -> list[G]:
        """Make items at the request's rate until its count or duration."""
        weights = self.mix.check(self.request.mix)
        return await drive(self.request, weights, self.rng, self.make, on_item)


Produce = Callable[[A, TrafficRequest, Callable[[G], None]], Awaitable[list[G]]]


def producer(simulate: Callable[[A, TrafficRequest], Simulation[G]]) -> Produce[A, G]:
    """A messaging provider's `produce` hook: run `simulate(account, request)`."""

    async def produce(account: A, request: TrafficRequest, on_item: Callable[[G], None]) -> list[G]:
        return await simulate(account, request).run(on_item)

    return produce
