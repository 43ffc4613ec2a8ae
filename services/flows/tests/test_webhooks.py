"""The webhook step's call against a real local HTTP server: the receiver verifies the
Standard Webhooks signature with the library and answers; non-2xx answers, timeouts,
unreachable receivers and unknown secrets become failed results the run branches on."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from switchboard.flows.webhooks import call

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


class Receiver:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()  # a /slow request answers only once this is set


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                payload = Webhook(SECRET).verify(body, headers)
            except Exception as exc:  # the library refuses the signature
                self._answer(401, {"error": str(exc)})
                return
            state.seen.append({"headers": headers, "payload": payload})
            if self.path == "/slow":
                state.release.wait(10)
            if self.path == "/broken":
                self._answer(500, {"error": "down"})
                return
            self._answer(200, {"quote": {"price": 42}, "echo": payload["data"]["fields"]})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except ConnectionError:  # the caller gave up (the timeout test)
                return

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()


def _data(url: str, **over: Any) -> dict[str, Any]:
    return {
        "url": url,
        "secret": "crm",
        "payload": {"type": "flow.webhook", "data": {"run_id": "r", "fields": {"who": "Ada"}}},
        "timeout_s": 5.0,
        **over,
    }


SECRETS = {"crm": SecretStr(SECRET)}


async def test_a_signed_call_verifies_at_the_receiver_and_returns_its_answer(
    receiver: tuple[str, Receiver],
) -> None:
    base, state = receiver
    async with httpx.AsyncClient() as http:
        result = await call(http, SECRETS, "r:1", _data(f"{base}/quote"))
    assert result.ok
    assert result.status == 200
    assert result.body == {"quote": {"price": 42}, "echo": {"who": "Ada"}}
    (seen,) = state.seen
    assert seen["headers"]["webhook-id"] == "r:1"  # the receiver deduplicates a repeat by it
    assert seen["payload"]["type"] == "flow.webhook"


async def test_a_wrong_secret_is_refused_by_the_receiver(receiver: tuple[str, Receiver]) -> None:
    base, state = receiver
    other = {"crm": SecretStr("whsec_" + base64.b64encode(b"x" * 32).decode())}
    async with httpx.AsyncClient() as http:
        result = await call(http, other, "r:1", _data(f"{base}/quote"))
    assert result.status == 401
    assert not result.ok
    assert state.seen == []


async def test_failures_become_results(receiver: tuple[str, Receiver]) -> None:
    base, state = receiver
    async with httpx.AsyncClient() as http:
        broken = await call(http, SECRETS, "r:2", _data(f"{base}/broken"))
        slow = await call(http, SECRETS, "r:3", _data(f"{base}/slow", timeout_s=0.3))
        state.release.set()
        unknown = await call(http, {}, "r:4", _data(f"{base}/quote"))
        refused = await call(http, SECRETS, "r:5", _data("http://127.0.0.1:1/none"))
    assert (broken.status, broken.ok) == (500, False)
    assert slow.status is None
    assert slow.error == "no answer within 0.3 s"
    assert unknown.error == "no signing secret named 'crm'"
    assert refused.status is None
    assert refused.error is not None
    assert refused.error.startswith("ConnectError")
