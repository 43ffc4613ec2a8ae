"""The ingest benchmark's baseline: the least a durable webhook endpoint can do, as a raw-ASGI
app (no framework routing, like ingest's own fast path) that reads the body, parses it as
JSON, publishes it to JetStream and waits for the ack. Run under uvicorn with the same
options as the services (runtime/service.py: uvicorn defaults, no access log)."""

from __future__ import annotations

import itertools
import os
from typing import Any

import nats
import orjson
from nats.js import JetStreamContext

ids = itertools.count()
_js: list[JetStreamContext] = []
_OK = orjson.dumps({"ok": True})
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_OK)).encode())]


async def _lifespan(receive: Any, send: Any) -> None:
    nc: Any = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            nc = await nats.connect(os.environ["BENCH_NATS_URL"])
            _js.append(nc.jetstream())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if nc is not None:
                await nc.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["method"] != "POST":  # the readiness probe of the benchmark
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    orjson.loads(body)  # parse, as any endpoint that answers 400 to a malformed body must
    await _js[0].publish("bench.raw", body, headers={"Nats-Msg-Id": f"b{next(ids)}"})
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _OK})
