"""The lifecycle every service shares: connect and provision at start-up, supervise
background workers, and shut down gracefully on SIGTERM (stop taking work, finish what is
in flight, drain the bus, exit)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
import uvicorn

from switchboard.events.streams import CLOCK
from switchboard.runtime.bus import Bus
from switchboard.runtime.db import create_pool, migrate
from switchboard.runtime.http import Health
from switchboard.runtime.logging import configure_logging, get_logger, register_secret
from switchboard.runtime.periodic import pause
from switchboard.runtime.read_deadline import read_deadline_protocol
from switchboard.runtime.servertime import ServerClock
from switchboard.runtime.settings import ConfigError, DatabaseSettings, ServiceSettings
from switchboard.runtime.tasks import cancel_and_wait
from switchboard.runtime.tracing import configure_tracing
from switchboard.runtime.vitals import sample_vitals

if TYPE_CHECKING:
    from switchboard.runtime.projection import Projection, Site

log = get_logger(__name__)

# The exit status of a process that lost a connection it cannot get back (EX_SOFTWARE is
# taken by crashes; EX_UNAVAILABLE says "a service we need is gone").
EXIT_CONNECTION_LOST = 69

# Set by ``serve`` (a real process): how a lost bus connection ends the process. Left None
# for apps served inside a test's event loop, which must not signal the test runner.
_request_exit: Callable[[int], None] | None = None


@dataclass
class Runtime:
    """What a running service holds: its connections, its workers and its health."""

    settings: ServiceSettings
    bus: Bus
    pool: asyncpg.Pool | None = None
    health: Health = field(default_factory=Health)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    # The one time for what instances write for each other (slots, pause ends, dates kept
    # for a retention or a lifetime): the NATS server's, synced before ``start`` runs.
    clock: ServerClock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = ServerClock(self.bus.js, CLOCK.name)

    def on_close(self, close: Callable[[], Awaitable[Any]]) -> None:
        """Run ``close`` at shutdown, after the workers stopped (e.g. an HTTP client)."""
        self.closers.append(close)

    def spawn(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` until shutdown, restarting it with backoff if it crashes."""

        async def supervise() -> None:
            delay = 0.5
            while not self.stop.is_set():
                try:
                    await work()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("worker crashed; restarting", worker=name, delay=delay)
                    await pause(self.stop, delay)
                    delay = min(delay * 2, 10.0)

        self.tasks.append(asyncio.create_task(supervise(), name=name))

    def site(self, schema: str, batch: int) -> Site:
        """Where the service's projections write while it runs: ``schema`` through its bus
        and pool, in batches of ``batch``, stopping with it."""
        assert self.pool is not None, "projections need a DatabaseSettings service"
        return {
            "schema": schema,
            "bus": self.bus,
            "pool": self.pool,
            "batch": batch,
            "stop": self.stop,
        }

    def run_projections(self, projections: Iterable[Projection]) -> None:
        """Run each projection until shutdown, as a worker named for it."""
        for projection in projections:
            self.spawn(f"projection-{projection.name}", projection.run)

    async def shutdown(self, grace: float) -> None:
        self.health.shutting_down = True
        self.stop.set()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=grace)
            for task in pending:
                log.warning("worker did not stop in time; cancelling", worker=task.get_name())
            await cancel_and_wait(pending)
        for close in self.closers:
            try:
                await close()
            except Exception:
                log.exception("close hook failed")
        await self.bus.close()
        if self.pool is not None:
            await self.pool.close()


async def connect_bus(settings: ServiceSettings, service: str, wait_s: float = 30.0) -> Bus:
    """Connect, retrying for ``wait_s`` (NATS may start after us), then fail clearly."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            return await Bus.connect(
                settings.nats_url,
                name=f"{service}-{settings.instance_id}",
                source=f"switchboard://{service}/{settings.instance_id}",
                user=settings.nats_user,
                password=settings.nats_password.get_secret_value()
                if settings.nats_password
                else None,
                creds=settings.nats_creds_file,
            )
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise ConfigError(
                    f"{service}: cannot reach NATS at {settings.nats_url} ({exc})."
                ) from None
            await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def service_lifespan(
    settings: ServiceSettings,
    service: str,
    start: Callable[[Runtime], Awaitable[None]],
    migrations: list[tuple[str, str]] | None = None,
    schema: str | None = None,
    health: Health | None = None,
) -> AsyncIterator[Runtime]:
    """Connect, provision, migrate, call ``start`` (which spawns workers); on exit stop all."""
    bus = await connect_bus(settings, service)
    if settings.provision:
        await bus.provision(
            settings.stream_replicas, duplicate_window_s=settings.duplicate_window_s
        )
    runtime = Runtime(settings=settings, bus=bus, health=health or Health())
    runtime.health.add("nats", bus.ready)
    runtime.health.add_liveness("nats", lambda: not bus.lost)
    bus.on_lost.append(_bus_lost)
    await runtime.clock.first_sync()
    runtime.spawn("server-clock", lambda: runtime.clock.run(runtime.stop))
    if isinstance(settings, DatabaseSettings):
        register_secret(_password_of(settings.database_url))
        runtime.pool = await create_pool(settings.database_url, settings.database_pool_size, schema)
        if migrations and schema:
            await migrate(runtime.pool, schema, migrations)
        pool = runtime.pool

        async def db_ready() -> bool:
            async with pool.acquire(timeout=2) as conn:
                return bool(await conn.fetchval("SELECT 1"))

        runtime.health.add("postgres", db_ready)
    await start(runtime)
    # What start-up built (imports, settings, caches: ~100k objects) lives as long as the
    # process: frozen, the collector's full passes stop rescanning it. Such a pass stalled
    # the event loop, every message and request in flight waiting behind it: the ingest
    # 35-64 ms (0.8 ms frozen), the outbound 100+ ms, the CRM 76 ms in the first second of
    # bench_crm's e2e run (its p99). That pass found 73 objects of garbage: freezing what
    # start-up left is cheaper than a collection on every start (tests start hundreds).
    gc.freeze()
    runtime.spawn("vitals", lambda: sample_vitals(runtime.health, bus, service, runtime.stop))
    log.info("started", service=service, instance=settings.instance_id)
    try:
        yield runtime
    finally:
        log.info("stopping", service=service)
        await runtime.shutdown(settings.shutdown_grace_s)


def _bus_lost() -> None:
    """nats-py gave the connection up for good: nothing this process does can reach the bus
    again, so it exits non-zero (after a graceful shutdown) and the orchestrator restarts it."""
    if _request_exit is not None:
        log.error("exiting: the NATS connection is closed for good", status=EXIT_CONNECTION_LOST)
        _request_exit(EXIT_CONNECTION_LOST)


def _password_of(url: str) -> str | None:
    from urllib.parse import urlsplit

    return urlsplit(url).password


def serve(app: Any, settings: ServiceSettings) -> None:
    """Run the ASGI app under uvicorn; SIGTERM/SIGINT trigger the graceful shutdown."""
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        timeout_keep_alive=settings.http_keep_alive_s,
        http=read_deadline_protocol(settings.http_read_timeout_s, settings.http_body_min_rate),
        access_log=False,
    )
    global _request_exit
    server = uvicorn.Server(config)
    sockets = None
    if settings.ops_port is not None:
        # One server, two listening sockets: the app tells them apart by the local port.
        sockets = [
            bind_socket(settings.http_host, p) for p in (settings.http_port, settings.ops_port)
        ]
    status = 0

    def request_exit(code: int) -> None:
        nonlocal status
        status = code
        server.should_exit = True  # the same graceful shutdown as SIGTERM

    def exit_with_status(signum: int, _: object) -> None:
        # uvicorn re-raises the signal it caught once shutdown is complete; by then
        # everything is finished cleanly, so the process reports success (or the status a
        # lost connection asked for) rather than death by signal.
        raise SystemExit(status)

    _request_exit = request_exit
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, exit_with_status)
    server.run(sockets=sockets)
    if not server.started:
        raise SystemExit(3)  # start-up failed; the reason is already logged
    if status:
        raise SystemExit(status)


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn (which listens on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}).") from None
    sock.set_inheritable(True)
    return sock


def run_main(
    service: str,
    load: Callable[[], ServiceSettings],
    create_app: Callable[[Any], Any],
) -> None:
    """The body of every service's ``main()``: settings, logging, tracing, serve."""
    try:
        settings = load()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(service, settings.log_level, settings.log_json)
    configure_tracing(service, settings.instance_id, settings.otlp_endpoint)
    try:
        serve(create_app(settings), settings)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None
