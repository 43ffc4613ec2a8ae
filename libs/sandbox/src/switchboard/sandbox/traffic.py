"""Provider-neutral parts of the traffic generator: pacing, durations and background jobs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchboard.sandbox.httpjson import ControlError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float | int) -> float:
    """Seconds in "30s", "500ms", "2m", "1h" or a bare number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 500ms, 2m)")
    return float(match.group(1)) * _UNITS[match.group(2)]


async def paced(
    count: int | None, rate: float | None, duration: float | None = None
) -> AsyncIterator[int]:
    """Yield 0, 1, 2, ... at `rate` per second until `count` items or `duration` seconds.

    Slots are scheduled from the start time, so a slow consumer catches up instead of
    drifting. No rate (or rate <= 0) yields as fast as the consumer takes them.
    """
    if count is None and duration is None:
        raise ValueError("give a count, a duration or both")
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index in itertools.count():
        if count is not None and index >= count:
            return
        offset = index / rate if rate and rate > 0 else 0.0
        if duration is not None and (offset >= duration or loop.time() - start >= duration):
            return
        delay = start + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif index % 256 == 255:
            await asyncio.sleep(0)
        yield index


class Generated(Protocol):
    """One item a generator produced: its kind, the account it belongs to, what was sent."""

    @property
    def kind(self) -> str: ...

    @property
    def account(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...


G = TypeVar("G", bound=Generated)


def check_mix(
    mix: Mapping[str, float] | None, default: Mapping[str, float], kinds: tuple[str, ...], what: str
) -> dict[str, float]:
    """A usable mix of `kinds` (`default` when None): known kinds, weights >= 0 with a
    positive sum; kinds of weight 0 are dropped. `what` names the kinds in errors."""
    chosen = dict(default if mix is None else mix)
    unknown = set(chosen) - set(kinds)
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; known: {', '.join(kinds)}")
    if any(weight < 0 for weight in chosen.values()) or sum(chosen.values()) <= 0:
        raise ValueError("mix weights must be >= 0 with a positive sum")
    return {kind: float(weight) for kind, weight in chosen.items() if weight > 0}


async def drive(
    request: TrafficRequest,
    weights: Mapping[str, float],
    rng: random.Random,
    make: Callable[[str], G],
    on_item: Callable[[G], None] | None = None,
) -> list[G]:
    """Make one item of a kind drawn from `weights` at the request's rate until its count
    or duration; every item goes to `on_item` as soon as it is made."""
    kinds, chances = list(weights), list(weights.values())
    produced: list[G] = []
    async for _ in paced(request.count, request.rate, request.duration):
        item = make(rng.choices(kinds, chances)[0])
        produced.append(item)
        if on_item is not None:
            on_item(item)
    return produced


@dataclass(frozen=True)
class TrafficRequest:
    """What a `POST /traffic` asks for: how much, how fast, which mix, which seed."""

    count: int | None = None
    duration: float | None = None
    rate: float | None = None
    mix: Mapping[str, float] | None = None
    seed: int = 0
    users: int = 50

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrafficRequest:
        """Parse the control body; a count or a duration is required."""
        count = None if data.get("count") is None else int(data["count"])
        duration = None if data.get("duration") is None else parse_duration(data["duration"])
        if count is None and duration is None:
            raise ControlError("give count or duration")
        mix = data.get("mix")
        if mix is not None and not isinstance(mix, dict):
            raise ControlError("mix must be a JSON object of kind weights")
        return cls(
            count=count,
            duration=duration,
            rate=None if data.get("rate") is None else float(data["rate"]),
            mix=mix,
            seed=int(data.get("seed", 0)),
            users=int(data.get("users", 50)),
        )


@dataclass
class TrafficJob:
    """A running or finished generation, as the control API reports it."""

    id: str
    provider: str
    account: str
    count: int | None
    duration: float | None
    rate: float | None
    produced: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    status: str = "running"
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "account": self.account,
            "count": self.count,
            "duration": self.duration,
            "rate": self.rate,
            "produced": self.produced,
            "by_kind": dict(self.by_kind),
            "status": self.status,
            "error": self.error,
        }


class JobRegistry:
    """Background traffic jobs started through the control API."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.jobs: dict[str, TrafficJob] = {}

    def start(
        self, job_args: dict[str, Any], body: Callable[[TrafficJob], Awaitable[None]]
    ) -> TrafficJob:
        """Create a job and run `body(job)` in the background; `body` updates the counters."""
        job = TrafficJob(id=str(next(self._ids)), **job_args)

        async def run() -> None:
            try:
                await body(job)
                job.status = "done"
            except asyncio.CancelledError:
                job.status = "cancelled"
                raise
            except Exception as exc:  # the job reports its own failure
                job.status = "failed"
                job.error = f"{type(exc).__name__}: {exc}"

        job.task = asyncio.create_task(run(), name=f"traffic-{job.id}")
        self.jobs[job.id] = job
        return job

    async def cancel(self, job_id: str) -> TrafficJob | None:
        job = self.jobs.get(job_id)
        if job is not None and job.task is not None and not job.task.done():
            job.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.task
        return job

    async def aclose(self) -> None:
        for job_id in list(self.jobs):
            await self.cancel(job_id)

    def clear(self) -> None:
        self.jobs.clear()


def job_routes(
    jobs: JobRegistry,
) -> list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]]:
    """The control routes every provider's traffic jobs share: list, read and stop."""

    async def list_jobs(request: Request) -> Response:
        return JSONResponse({"jobs": [j.to_json() for j in jobs.jobs.values()]})

    async def get_job(request: Request) -> Response:
        job = jobs.jobs.get(request.path_params["job"])
        if job is None:
            raise ControlError("no such job", 404)
        return JSONResponse(job.to_json())

    async def stop_job(request: Request) -> Response:
        job = await jobs.cancel(request.path_params["job"])
        if job is None:
            raise ControlError("no such job", 404)
        return JSONResponse(job.to_json())

    return [
        ("/traffic", list_jobs, ["GET"]),
        ("/traffic/{job}", get_job, ["GET"]),
        ("/traffic/{job}", stop_job, ["DELETE"]),
    ]
