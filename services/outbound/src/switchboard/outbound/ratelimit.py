"""Rate limits shared by every outbound instance, held in the ``ratelimit`` KV bucket.

GCRA (the generic cell rate algorithm): each limit key stores its "theoretical arrival
time" (TAT); a send at time T is allowed when T >= TAT - tolerance, and moves the TAT to
max(TAT, T) + 1/rate. Reservations are made with compare-and-swap on the key's revision,
so instances racing for the same bot or chat each get a distinct slot. A send reserves one
common time on all its keys (bot and chat, say), which is when it may go out; a 429's
retry_after is a pause key that pushes that time for every instance.

Written here rather than taken from a library because the libraries at hand (aiolimiter,
limits) keep state in process memory or Redis, and the platform's state lives in JetStream.
Instances must share a clock (NTP), as slots are absolute times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from switchboard.events.ids import stable_hash


@dataclass(frozen=True)
class Limit:
    """``count`` sends per ``per`` seconds, with bursts of up to ``burst`` sends."""

    count: float
    per: float = 1.0
    burst: int = 1

    @property
    def interval(self) -> float:
        return self.per / self.count

    @property
    def tolerance(self) -> float:
        return self.interval * (self.burst - 1)


@dataclass(frozen=True)
class LimitKey:
    """One shared limit: a name (e.g. ``tg.bot.<id>``) and its rate."""

    name: str
    limit: Limit


def kv_key(name: str) -> str:
    # KV keys allow only [-/_=.a-zA-Z0-9]; names carry chat ids and '@usernames'.
    return "rl." + stable_hash(name)[:40]


def pause_key(name: str) -> str:
    return "pause." + stable_hash(name)[:40]


class SharedLimiter:
    """Reserves send slots across instances."""

    def __init__(
        self, kv: KeyValue, clock: Callable[[], float] = time.time, safety: float = 0.0
    ) -> None:
        self.kv = kv
        self.clock = clock
        # Seconds added to every interval, so that instances' clocks and the provider's
        # window boundaries never make two slots land a hair too close.
        self.safety = safety

    async def _read(self, key: str) -> tuple[float, int]:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return 0.0, 0
        if entry.value is None:
            return 0.0, entry.revision or 0
        return float(entry.value.decode()), entry.revision or 0

    async def _write(self, key: str, value: float, revision: int) -> bool:
        data = repr(value).encode()
        try:
            if revision == 0:
                await self.kv.create(key, data)
            else:
                await self.kv.update(key, data, last=revision)
        except KeyWrongLastSequenceError:
            return False
        except Exception as exc:  # nats-py raises a plain APIError for "key exists"
            if "wrong last sequence" in str(exc).lower() or "exists" in str(exc).lower():
                return False
            raise
        return True

    async def reserve(
        self, primary: LimitKey, secondary: Sequence[LimitKey] = (), pauses: Sequence[str] = ()
    ) -> tuple[float | None, float]:
        """Try to reserve one common slot on all keys: (slot time, None) or (None, retry at).

        Only the ``primary`` key (the bot, the number) queues reservations into the future.
        A ``secondary`` key (a chat, a recipient) or a pause that is not ready yet reserves
        nothing: moving the bot's arrival time to a busy chat's next slot would block every
        other chat until then, and waste the bot's capacity.
        """
        for _ in range(50):
            now = self.clock()
            paused = [(await self._read(pause_key(p)))[0] for p in pauses]
            sec = [await self._read(kv_key(k.name)) for k in secondary]
            ready = max(
                [
                    now,
                    *paused,
                    *(tat - k.limit.tolerance for k, (tat, _) in zip(secondary, sec, strict=True)),
                ]
            )
            if ready > now:
                return None, ready
            tat, rev = await self._read(kv_key(primary.name))
            at = max(now, tat - primary.limit.tolerance)
            if not await self._write(
                kv_key(primary.name), max(tat, at) + primary.limit.interval + self.safety, rev
            ):
                continue  # another instance took the slot: recompute
            ok = True
            for k, (s_tat, s_rev) in zip(secondary, sec, strict=True):
                if not await self._write(
                    kv_key(k.name), max(s_tat, at) + k.limit.interval + self.safety, s_rev
                ):
                    ok = False  # the recipient was taken meanwhile: the bot slot is lost (safe)
                    break
            if ok:
                return at, at
        raise RuntimeError("rate limiter contention: could not reserve a slot")

    async def wait(
        self, primary: LimitKey, secondary: Sequence[LimitKey] = (), pauses: Sequence[str] = ()
    ) -> float:
        """Reserve, waiting for recipients and pauses as needed; sleep until the slot."""
        started = self.clock()
        while True:
            at, retry = await self.reserve(primary, secondary, pauses)
            if at is not None:
                break
            await asyncio.sleep(max(0.0, retry - self.clock()))
        delay = at - self.clock()
        if delay > 0:
            await asyncio.sleep(delay)
        return self.clock() - started

    async def pause(self, name: str, seconds: float) -> None:
        """Pause ``name`` (a bot, a chat) for every instance until now + seconds."""
        until = self.clock() + seconds
        for _ in range(20):
            current, rev = await self._read(pause_key(name))
            if current >= until or await self._write(pause_key(name), until, rev):
                return

    async def paused_until(self, name: str) -> float:
        return (await self._read(pause_key(name)))[0]
