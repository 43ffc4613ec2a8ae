"""The one request a provider makes when a webhook URL is set (Viber's `webhook` event,
Meta's verification GET): sent right away, judged, and recorded as delivery attempt 1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from switchboard.sandbox.provider import Core


async def handshake(
    core: Core,
    *,
    provider: str,
    account: str,
    url: str,
    ref: str,
    request: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
    problem_of: Callable[[httpx.Response], str | None],
    unreachable: Callable[[str], str] = str,
) -> str | None:
    """What went wrong (None: the receiver passed): `problem_of` the answer, or
    `unreachable(error class name)` when no answer came."""
    started = core.clock.monotonic()
    status: int | None = None
    try:
        response = await request(core.http.get())
        status = response.status_code
        problem = problem_of(response)
    except httpx.HTTPError as exc:
        problem = unreachable(type(exc).__name__)
    core.recorder.add_delivery(
        provider=provider,
        account=account,
        url=url,
        ref=ref,
        attempt=1,
        status=status,
        ok=problem is None,
        error=problem,
        started_mono=started,
    )
    return problem
