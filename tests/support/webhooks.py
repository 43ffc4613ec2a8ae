"""A real local HTTP receiver of Standard Webhooks: it verifies each call's signature with
the ``standardwebhooks`` library (401 when it does not verify) and answers a fixed JSON."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@asynccontextmanager
async def receiver(
    secret: str, answer: dict[str, Any]
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """``(base url, calls seen)``: each verified call's headers and payload, in order."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                payload = Webhook(secret).verify(body, headers)
            except Exception as exc:
                self._answer(401, {"error": str(exc)})
                return
            seen.append({"headers": headers, "payload": payload})
            self._answer(200, answer)

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
