"""Helpers for tests of any package: serve an ASGI app on a free port, wait for conditions."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, TypedDict

import httpx
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from switchboard.sandbox.app import Sandbox


class _QuietServer(uvicorn.Server):
    """A uvicorn server for tests: leaves signal handlers alone and stops in milliseconds
    (uvicorn's own loop ticks and shutdown pause are 0.1 s each)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def main_loop(self) -> None:
        counter = 0
        while not self.should_exit:
            await asyncio.sleep(0.005)
            counter = (counter + 1) % 8640000
            if counter % 20 == 0 and await self.on_tick(counter):
                return

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 1.0)
        state = self.server_state
        while (state.connections or state.tasks) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        for task in list(state.tasks):
            task.cancel()
        if not self.force_exit:
            await self.lifespan.shutdown()


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on such sockets (else ~40 ms
    # delayed-ACK stalls per request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _config(app: ASGIApp, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=300,  # tests poll it after long waits: never race an idle close
        loop="asyncio",
    )


def _server(
    app: ASGIApp, host: str, port: int, log_level: str
) -> tuple[socket.socket, int, _QuietServer]:
    """A bound socket (port 0: a free one), its port, and the server to run on it."""
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    return sock, bound_port, _QuietServer(_config(app, host, bound_port, log_level))


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    startup_timeout: float = 10.0,
) -> AsyncIterator[str]:
    """Run `app` in a real uvicorn server in this event loop; yields its base URL.

    Port 0 picks a free port. The server (and the app's lifespan) stops on exit.
    """
    sock, bound_port, server = _server(app, host, port, log_level)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn-{bound_port}")
    try:
        await wait_until(
            lambda: server.started or task.done(),
            timeout=startup_timeout,
            message="server did not start",
        )
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start-up")
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


@contextlib.asynccontextmanager
async def serve_provider(box: Sandbox, name: str) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """One provider of `box` served alone at root (its real paths, plus `/_sandbox`) with a
    client on it: yields (base URL, client). The sandbox is closed on exit."""
    try:
        async with (
            serve(box.provider_app(name)) as url,
            httpx.AsyncClient(base_url=url, trust_env=False) as http,
        ):
            yield url, http
    finally:
        await box.aclose()


class Disconnectable(Protocol):
    """A client a test opened (Telethon's, or the gateway's adapter client)."""

    def disconnect(self) -> Awaitable[object]: ...


@contextlib.asynccontextmanager
async def wire_sandbox(clients: Sequence[Disconnectable] = ()) -> AsyncIterator[Sandbox]:
    """A sandbox whose MTProto wire server listens. On exit the `clients` (a list the test
    fills as it opens them) are disconnected first, then the sandbox is closed."""
    from switchboard.sandbox.app import Sandbox  # here: `serve` alone loads no provider

    sandbox = Sandbox()
    await sandbox.mtproto_wire.start()
    try:
        yield sandbox
    finally:
        for client in clients:
            await client.disconnect()
        await sandbox.aclose()


class ServeOptions(TypedDict, total=False):
    """What `serve` takes besides the app (host, port, log level, start-up timeout)."""

    host: str
    port: int
    log_level: str
    startup_timeout: float


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, **options: Unpack[ServeOptions]) -> Iterator[str]:
    """`serve` in a background thread with its own event loop (for synchronous tests).

    Only talk to it over HTTP: the app's objects belong to that thread's loop.
    """
    started: concurrent.futures.Future[tuple[str, asyncio.AbstractEventLoop, asyncio.Event]]
    started = concurrent.futures.Future()

    async def run() -> None:
        stop = asyncio.Event()
        try:
            async with serve(app, **options) as url:
                started.set_result((url, asyncio.get_running_loop(), stop))
                await stop.wait()
        except BaseException as exc:
            if started.done():
                raise
            started.set_exception(exc)  # a failed start is raised in the caller's thread

    thread = threading.Thread(target=lambda: asyncio.run(run()), name="serve-in-thread")
    thread.daemon = True
    thread.start()
    url, loop, stop = started.result()
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    message: str = "condition not met",
) -> None:
    """Poll `condition` (sync or async) until true; TimeoutError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise TimeoutError(f"{message} within {timeout} s")
        await asyncio.sleep(interval)


class WebhookReceiver:
    """A scriptable webhook endpoint: records what it receives, can fail on purpose.

    Serve `receiver.app` with `serve()`; `fail_next(n, status)` answers the next `n`
    deliveries with `status`. `received` holds (headers, JSON body) of accepted ones.
    """

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.received: list[tuple[dict[str, str], object]] = []
        self.attempts = 0
        self._failures: list[int] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    def fail_next(self, count: int, status: int = 503) -> None:
        self._failures.extend([status] * count)

    @property
    def bodies(self) -> list[object]:
        return [body for _, body in self.received]

    async def _handle(self, request: Request) -> Response:
        self.attempts += 1
        if self._failures:
            return Response(status_code=self._failures.pop(0))
        self.received.append((dict(request.headers), await request.json()))
        return Response(status_code=200)
