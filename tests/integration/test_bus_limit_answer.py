"""A request within the body limit whose message is over the bus's ``max_payload`` (the
body plus the envelope, or a sealed field a third larger) is answered 413 with a problem
document by the shared app shell, on a server with NATS's default settings: nothing was
sent. Before, every service answered such a request 500 ``internal_error``."""

from __future__ import annotations

import httpx
from fastapi import Request
from starlette.responses import Response

from switchboard.runtime.app import service_app
from switchboard.runtime.embedded import EmbeddedNats
from switchboard.runtime.settings import ServiceSettings
from switchboard.runtime.testing import serve_app


async def test_a_request_too_large_for_the_bus_is_413(nats_default_server: EmbeddedNats) -> None:
    settings = ServiceSettings(nats_url=nats_default_server.url)

    async def start(_: object) -> None:
        return None

    app = service_app(service="probe", settings=settings, start=start, title="probe",
                      description="probe")  # fmt: skip

    @app.post("/v1/relay")
    async def relay(request: Request) -> Response:
        body = await request.body()
        await app.runtime.bus.publish_raw("probe.relay", body, {"Nats-Msg-Id": "r-1"})
        return Response(status_code=204)

    async with serve_app(app) as url, httpx.AsyncClient(timeout=10) as http:
        limit = settings.max_body_bytes
        r = await http.post(f"{url}/v1/relay", content=b"x" * (limit - 10))
        assert r.status_code == 413, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "too_large"
        assert "over the bus's limit of 1048576" in r.json()["detail"]
        assert app.runtime.bus.nc.is_connected  # refused before it was sent
