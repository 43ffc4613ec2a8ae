"""pytest plugin: JetStream and Postgres for tests.

Where they come from, in order: URLs from the environment (``SWITCHBOARD_TEST_NATS_URL``,
``SWITCHBOARD_TEST_DATABASE_URL``); testcontainers when a Docker engine answers; otherwise
embedded servers on free ports in temp dirs. No test is skipped for want of Docker.
Isolation: every test gets a fresh database, and a fresh NATS server (embedded) or a NATS
wiped of streams and buckets (shared URL).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats, EmbeddedPostgres


def pytest_configure(config: pytest.Config) -> None:
    """Apps served in-process never run ``configure_logging`` (only a service's ``main``
    does), so structlog keeps its defaults, which render a logged exception with rich's
    pretty traceback and every frame's locals: about 1.3 s each, most of the route-scope
    walk's minute per service. Plain tracebacks, the rest of the defaults unchanged."""
    processors = list(structlog.get_config()["processors"])
    if processors and isinstance(processors[-1], structlog.dev.ConsoleRenderer):
        processors[-1] = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.plain_traceback
        )
        structlog.configure(processors=processors)


def docker_available() -> bool:
    """True when a Docker engine answers (testcontainers can start servers)."""
    try:
        import docker

        client = getattr(docker, "from_env")(timeout=2)  # noqa: B009 (stubs vary by version)
        client.ping()
    except Exception:
        return False
    return True


class _PostgresSource:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.embedded: EmbeddedPostgres | None = None
        self.container: Any = None
        self.url = os.environ.get("SWITCHBOARD_TEST_DATABASE_URL", "")

    def start(self) -> str:
        if self.url:
            return self.url
        if docker_available():
            from testcontainers.postgres import PostgresContainer

            self.container = PostgresContainer("postgres:16-alpine", driver=None).start()
            self.url = self.container.get_connection_url()
            return self.url
        self.embedded = EmbeddedPostgres(self.tmp / "pg").start()
        self.url = self.embedded.url
        return self.url

    def stop(self) -> None:
        if self.embedded:
            self.embedded.stop()
        if self.container is not None:
            self.container.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Postgres server shared by the session (databases are per test)."""
    source = _PostgresSource(tmp_path_factory.mktemp("postgres"))
    try:
        yield source.start()
    finally:
        source.stop()


async def create_database(server_url: str) -> str:
    """A new, empty database on the Postgres server at ``server_url``: its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    """A fresh, empty database for this test."""
    url = await create_database(postgres_server)
    yield url
    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(postgres_server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def _nats_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    url = os.environ.get("SWITCHBOARD_TEST_NATS_URL")
    if url:
        yield url
        return
    if docker_available():
        from testcontainers.nats import NatsContainer

        container = NatsContainer("nats:2.12").with_command("-js")
        container.start()
        try:
            yield container.nats_uri()
        finally:
            container.stop()
        return
    yield None


@pytest.fixture
async def nats_server(
    _nats_shared: str | None, tmp_path: Path
) -> AsyncIterator[EmbeddedNats | None]:
    """A fresh embedded server for this test, or None when a shared URL is in use."""
    if _nats_shared is not None:
        yield None
        return
    server = EmbeddedNats(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nats_url(_nats_shared: str | None, nats_server: EmbeddedNats | None) -> str:
    """A JetStream server with no streams or buckets left by other tests."""
    if nats_server is not None:
        return nats_server.url
    assert _nats_shared is not None
    import nats

    nc = await nats.connect(_nats_shared)
    js = nc.jetstream()
    for info in await js.streams_info():
        if info.config.name:
            await js.delete_stream(info.config.name)
    await nc.close()
    return _nats_shared


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    """A connection to this test's JetStream, with the catalog's streams and buckets."""
    bus = await Bus.connect(nats_url, name="test")
    await bus.provision()
    yield bus
    await bus.close()


@pytest.fixture
def nats_default_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """An embedded server with NATS's default settings (``max_payload`` 1 MB), what a
    production server has unless configured: the suite's other servers allow 8 MB."""
    server = EmbeddedNats(tmp_path / "nats-default", max_payload=None).start()
    try:
        yield server
    finally:
        server.stop()
