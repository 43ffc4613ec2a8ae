"""A real local HTTP endpoint for signed webhook calls, served in the test's event loop: each
POST is checked by the caller's ``verify`` (a signature library's check; what it raises is
answered 401) and answered by the caller's ``answer``; the verified calls are kept in order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from switchboard.runtime.testing.servers import serve_app

# (raw body, headers) -> the verified payload; raises when the signature does not verify.
Verify = Callable[[bytes, dict[str, str]], Any]
# (path, verified payload) -> (status, JSON body) to answer; it may wait (a late receiver).
Answer = Callable[[str, Any], Awaitable[tuple[int, Any]]]


@asynccontextmanager
async def webhook_receiver(
    verify: Verify, answer: Answer
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """``(base url, calls seen)``: each verified call's headers and payload, in order."""
    seen: list[dict[str, Any]] = []

    async def receive(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)  # Starlette's names are lower case
        try:
            payload = verify(body, headers)
        except Exception as exc:  # whatever the library raises for a bad signature
            return JSONResponse({"error": str(exc)}, 401)
        seen.append({"headers": headers, "payload": payload})
        status, answered = await answer(request.url.path, payload)
        return JSONResponse(answered, status)

    app = Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])
    async with serve_app(app) as url:
        yield url, seen
