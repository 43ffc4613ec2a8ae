"""The ingest benchmark's baseline: the least a durable webhook endpoint can do, a Starlette
route that publishes the body to JetStream and waits for the ack. Run under uvicorn."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

state: dict[str, object] = {}
ids = itertools.count()


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    nc = await nats.connect(os.environ["BENCH_NATS_URL"])
    js = nc.jetstream()
    state["js"] = js
    yield
    await nc.close()


async def hook(request: Request) -> JSONResponse:
    body = await request.body()
    js = state["js"]
    await js.publish("bench.raw", body, headers={"Nats-Msg-Id": f"b{next(ids)}"})  # type: ignore[attr-defined]
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/hook", hook, methods=["POST"])], lifespan=lifespan)
