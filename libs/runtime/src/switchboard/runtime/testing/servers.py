"""Running services for tests: in the test's event loop under uvicorn, or as real processes
(for kill/restart scenarios), and waiting on conditions with a deadline."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from switchboard.runtime.embedded import die_with_parent, free_port
from switchboard.runtime.read_deadline import read_deadline_protocol
from switchboard.runtime.service import bind_socket

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll ``check`` until it returns a truthy value (returned) or raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = await check()
            if result:
                return result
            last = result
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout} s (last: {last!r})")
        await asyncio.sleep(interval)


@asynccontextmanager
async def serve_app(
    app: Any, host: str = "127.0.0.1", port: int = 0, read_timeout_s: float = 30.0
) -> AsyncIterator[str]:
    """Serve an ASGI app (lifespan included) on ``port`` (a free one by default), and on its
    ``ops_port`` too when it has one, with the HTTP protocol and read deadline of
    :func:`switchboard.runtime.service.serve`."""
    port = port or free_port(host)
    # Keep-alive longer than any wait in a test: with uvicorn's 5 s, a client that polled
    # something else for 5 s raced the server closing its idle connection (httpx.ReadError
    # on the next request, seen in full runs).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_keep_alive=300,
        http=read_deadline_protocol(read_timeout_s),
    )
    server = uvicorn.Server(config)
    ops_port = getattr(app, "ops_port", None)
    sockets = None
    if ops_port is not None:
        sockets = [bind_socket(host, port), bind_socket(host, ops_port)]
    task = asyncio.create_task(server.serve(sockets=sockets))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped during start-up")
            await asyncio.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(30):
            await task


@dataclass
class ServiceProcess:
    """A service run as ``python -m <module>`` with its own environment, like production."""

    module: str
    env: dict[str, str]
    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        env = {**os.environ, **self.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
        self.starts += 1
        return self

    async def ready(self, timeout: float = 30.0) -> None:
        async with httpx.AsyncClient(timeout=2) as client:

            async def is_ready() -> bool:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.module} exited with {self.proc.returncode}:\n{self.tail()}"
                    )
                try:
                    response = await client.get(f"{self.url}/readyz")
                except httpx.HTTPError:
                    return False
                return response.status_code == 200

            await eventually(is_ready, timeout=timeout, message=f"{self.module} ready")

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, like a crashed pod."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the graceful path."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
