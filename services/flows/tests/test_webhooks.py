"""The webhook step's call against a real local HTTP server: the receiver verifies the
Standard Webhooks signature with the library and answers; non-2xx answers, timeouts,
unreachable receivers and unknown secrets become failed results the run branches on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from standardwebhooks import Webhook

from switchboard.flows.document import InvalidFlowError, validate
from switchboard.flows.settings import FlowsSettings
from switchboard.flows.webhooks import call
from switchboard.runtime.testing.receivers import webhook_receiver

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


class Receiver:
    """What the receiver answers by path: ``/broken`` fails, ``/slow`` answers only once
    ``release`` is set, anything else quotes a price and echoes the payload's fields."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.release = asyncio.Event()

    async def answer(self, path: str, payload: Any) -> tuple[int, dict[str, Any]]:
        if path == "/slow":
            await self.release.wait()
        if path == "/broken":
            return 500, {"error": "down"}
        return 200, {"quote": {"price": 42}, "echo": payload["data"]["fields"]}


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, Receiver]]:
    state = Receiver()
    async with webhook_receiver(Webhook(SECRET).verify, state.answer) as (url, seen):
        state.seen = seen
        try:
            yield url, state
        finally:
            state.release.set()  # a late answer still pending must not hold the shutdown


def _data(url: str, **over: Any) -> dict[str, Any]:
    return {
        "url": url,
        "secret": "crm",
        "payload": {"type": "flow.webhook", "data": {"run_id": "r", "fields": {"who": "Ada"}}},
        "timeout_s": 5.0,
        **over,
    }


KEY = SecretStr(SECRET)


async def test_a_signed_call_verifies_at_the_receiver_and_returns_its_answer(
    receiver: tuple[str, Receiver],
) -> None:
    base, state = receiver
    async with httpx.AsyncClient() as http:
        result = await call(http, KEY, "crm", "r:1", _data(f"{base}/quote"), private=True)
    assert result.ok
    assert result.status == 200
    assert result.body == {"quote": {"price": 42}, "echo": {"who": "Ada"}}
    (seen,) = state.seen
    assert seen["headers"]["webhook-id"] == "r:1"  # the receiver deduplicates a repeat by it
    assert seen["payload"]["type"] == "flow.webhook"


async def test_a_wrong_secret_is_refused_by_the_receiver(receiver: tuple[str, Receiver]) -> None:
    base, state = receiver
    other = SecretStr("whsec_" + base64.b64encode(b"x" * 32).decode())
    async with httpx.AsyncClient() as http:
        result = await call(http, other, "crm", "r:1", _data(f"{base}/quote"), private=True)
    assert result.status == 401
    assert not result.ok
    assert state.seen == []


async def test_failures_become_results(receiver: tuple[str, Receiver]) -> None:
    base, state = receiver
    async with httpx.AsyncClient() as http:
        broken = await call(http, KEY, "crm", "r:2", _data(f"{base}/broken"), private=True)
        slow = await call(
            http, KEY, "crm", "r:3", _data(f"{base}/slow", timeout_s=0.3), private=True
        )
        state.release.set()
        unknown = await call(http, None, "crm", "r:4", _data(f"{base}/quote"), private=True)
        refused = await call(
            http, KEY, "crm", "r:5", _data("http://127.0.0.1:1/none"), private=True
        )
    assert (broken.status, broken.ok) == (500, False)
    assert slow.status is None
    assert slow.error == "no answer within 0.3 s"
    assert unknown.error == "no signing secret named 'crm' in the workspace"
    assert refused.status is None
    assert refused.error is not None
    assert refused.error.startswith("ConnectError")


def test_signing_secrets_belong_to_a_workspace() -> None:
    """``<workspace>/<name>=whsec_...``: a flow signs only with its own workspace's secrets;
    a secret naming no workspace (every workspace's flows could sign with it) stops the
    service at start with one sentence saying how to write it."""
    settings = FlowsSettings(api_keys={"k": "demo"}, webhook_secrets=f"demo/crm={SECRET}")  # type: ignore[arg-type]
    found = settings.webhook_secret("demo", "crm")
    assert found is not None
    assert found.get_secret_value() == SECRET
    assert settings.webhook_secret("other", "crm") is None
    for bare in (f"crm={SECRET}", f"/crm={SECRET}", f"demo/={SECRET}", f"demo/a.b={SECRET}"):
        with pytest.raises(ValidationError, match="names no workspace"):
            FlowsSettings(api_keys={"k": "demo"}, webhook_secrets=bare)  # type: ignore[arg-type]


def test_a_document_naming_a_secret_its_workspace_has_not_is_refused() -> None:
    doc = {
        "name": "Price check",
        "triggers": [{"type": "keyword", "keywords": ["price"]}],
        "start": "ask",
        "steps": {
            "ask": {"type": "webhook", "url": "https://r.example/q", "secret": "crm"},
        },
    }
    validate(doc, lambda name: name == "crm")
    with pytest.raises(InvalidFlowError) as err:
        validate(doc, lambda name: False)
    assert [p["path"] for p in err.value.problems] == ["$.steps.ask.secret"]


async def test_a_receiver_that_is_not_public_is_never_called(
    receiver: tuple[str, Receiver],
) -> None:
    """A flow's URL is its author's: a call to a loopback, private, link-local or metadata
    address (or a name resolving to one) fails as the run's failure branch, without a
    connection, unless the deployment allows private receivers. Before, any workspace could
    have the flows service POST into the cluster's network and read the answer back."""
    base, state = receiver
    port = base.rsplit(":", 1)[1]
    async with httpx.AsyncClient() as http:
        for url in (f"{base}/quote", f"http://localhost:{port}/quote",
                    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x",
                    "http://[::1]:1/x"):  # fmt: skip
            result = await call(http, KEY, "crm", "r:7", _data(url))
            assert (result.status, result.ok) == (None, False), url
            assert result.error is not None
            assert "not a public address" in result.error, result.error
        assert state.seen == []
        # allowed: the name is kept for the receiver (Host) while the checked address is used
        named = await call(http, KEY, "crm", "r:8", _data(f"http://localhost:{port}/quote"),
                           private=True)  # fmt: skip
    assert named.ok
    (seen,) = state.seen
    assert seen["headers"]["host"] == f"localhost:{port}"


@contextlib.asynccontextmanager
async def _streaming_receiver(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """A receiver that answers 200 at once and then writes its body as ``chunks`` come (a
    chunked answer): what a slow or hostile receiver does after the headers."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")  # fmt: skip
        try:
            async for chunk in chunks:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/drip"
    finally:
        server.close()


async def test_the_timeout_bounds_the_whole_call_not_each_read() -> None:
    """``timeout_s`` is documented as the whole call's. A receiver that answers its headers
    and then drips its body a byte at a time, each byte sooner than the timeout, held the
    step (and a slot of the flows worker) for as long as it liked: httpx's timeout bounds
    each read, not the call. The drip here would last a minute; the call gives up at 0.3 s."""
    done = asyncio.Event()

    async def drip() -> AsyncIterator[bytes]:
        yield b"{"
        for _ in range(600):
            try:
                await asyncio.wait_for(done.wait(), 0.1)
                return
            except TimeoutError:
                yield b" "
        yield b"}"

    async with _streaming_receiver(drip()) as url, httpx.AsyncClient() as http:
        try:
            result = await call(http, KEY, "crm", "r:9", _data(url, timeout_s=0.3), private=True)
        finally:
            done.set()
    assert (result.status, result.error) == (None, "no answer within 0.3 s")


async def test_an_endless_answer_is_read_no_further_than_its_limit() -> None:
    """An answer is read up to 256 KiB and no further: the flows service is shared by every
    workspace, and a receiver streaming without end made it read (and hold in memory) all
    it was sent until the call's time ran out. The status stands (the receiver got the call),
    the answer is none, so a step that saves from it takes its failure branch."""
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"[" + b"0," * 32_767
        while sent < 64 << 20:
            sent += len(chunk)
            yield chunk

    async with _streaming_receiver(endless()) as url, httpx.AsyncClient() as http:
        result = await call(http, KEY, "crm", "r:10", _data(url, timeout_s=8.0), private=True)
    assert result.status == 200
    assert result.body is None
    # Written into the sockets, not read: loopback buffers take a few MiB past the limit
    # before the receiver blocks; the old call read all 64 MiB.
    assert sent < 16 << 20
