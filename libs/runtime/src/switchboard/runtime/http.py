"""The HTTP surface every service shares: ``/healthz`` (the process can still work: 503 once
a connection it cannot get back is lost, so the orchestrator restarts it), ``/readyz``
(the bus and the database really answer), ``/metrics`` (Prometheus), and JSON errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ReadinessCheck = Callable[[], Awaitable[bool]]


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **details: Any
) -> JSONResponse:
    """The one error shape of every API: ``{"error": {"code", "message", ...details}}``."""
    return JSONResponse({"error": {"code": code, "message": message, **details}}, status, headers)


class Health:
    """Named readiness checks; ``/readyz`` is 200 only when all of them pass. Liveness
    checks (cheap, synchronous) say whether the process can ever work again; ``/healthz``
    is 503 when one fails."""

    def __init__(self) -> None:
        self.checks: dict[str, ReadinessCheck] = {}
        self.liveness: dict[str, Callable[[], bool]] = {}
        self.shutting_down = False

    def add(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    def add_liveness(self, name: str, alive: Callable[[], bool]) -> None:
        self.liveness[name] = alive

    def dead(self) -> list[str]:
        """The names of the failing liveness checks."""
        return [name for name, alive in self.liveness.items() if not alive()]

    async def results(self) -> dict[str, bool]:
        async def run(check: ReadinessCheck) -> bool:
            try:
                return await asyncio.wait_for(check(), 3.0)
            except Exception:
                return False

        values = await asyncio.gather(*(run(c) for c in self.checks.values()))
        return dict(zip(self.checks, values, strict=True))

    def routes(self) -> list[Route]:
        async def healthz(_: Request) -> Response:
            dead = self.dead()
            if dead:
                return JSONResponse({"status": "dead", "failed": dead}, 503)
            return JSONResponse({"status": "ok"})

        async def readyz(_: Request) -> Response:
            results = await self.results()
            ready = all(results.values()) and not self.shutting_down
            body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": results}
            if self.shutting_down:
                body["shutting_down"] = True
            return JSONResponse(body, 200 if ready else 503)

        async def metrics(_: Request) -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        return [
            Route("/healthz", healthz, include_in_schema=False),
            Route("/readyz", readyz, include_in_schema=False),
            Route("/metrics", metrics, include_in_schema=False),
        ]
