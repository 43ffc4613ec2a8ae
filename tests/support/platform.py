"""The whole platform as real processes for chaos tests: a 3-node JetStream cluster, a
Postgres of its own (so it can be restarted), the sandbox providers in-process, and several
instances of each service, any of which can be SIGKILLed and started again."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from switchboard.runtime.embedded import EmbeddedPostgres, free_port
from switchboard.runtime.testing import ServiceProcess
from tests.support.cluster import NatsCluster
from tests.support.stack import service_env

ADMIN = "chaos-admin-token-77"


@dataclass
class Platform:
    """``counts`` says how many instances of each service run (module ``switchboard.<name>``)."""

    root: Path
    counts: dict[str, int]
    sandbox_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    nats: NatsCluster | None = None
    postgres: EmbeddedPostgres | None = None
    procs: dict[str, list[ServiceProcess]] = field(default_factory=dict)
    kills: list[tuple[float, str, int]] = field(default_factory=list)  # (wall time, service, i)

    @property
    def nats_url(self) -> str:
        assert self.nats is not None
        return self.nats.url

    @property
    def postgres_url(self) -> str:
        assert self.postgres is not None
        return self.postgres.url

    def url(self, service: str, i: int = 0) -> str:
        return self.procs[service][i].url

    async def start(self) -> Platform:
        self.nats = NatsCluster(self.root / "nats").start()
        self.postgres = EmbeddedPostgres(self.root / "postgres").start()
        await self.nats.wait_ready()
        env = service_env(
            self.nats.url,
            self.postgres.url,
            SWITCHBOARD_STREAM_REPLICAS=3,
            SWITCHBOARD_ADMIN_TOKEN=ADMIN,
            **self.extra_env,
        )
        for service, count in self.counts.items():
            for i in range(count):
                port = free_port()
                instance_env = {**env, "SWITCHBOARD_HTTP_PORT": str(port)}
                if service == "ingest":
                    instance_env["SWITCHBOARD_INGEST_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
                self.procs.setdefault(service, []).append(
                    ServiceProcess(
                        f"switchboard.{service}",
                        instance_env,
                        self.root / "logs" / f"{service}{i}.log",
                        port=port,
                    ).start()
                )
        for instances in self.procs.values():
            for proc in instances:
                await proc.ready(90)
        return self

    def kill_random(self, service: str, rng: random.Random) -> int:
        """SIGKILL one instance of ``service``; returns its index."""
        i = rng.randrange(len(self.procs[service]))
        self.procs[service][i].kill()
        self.kills.append((time.time(), service, i))
        return i

    async def restart(self, service: str, i: int) -> None:
        proc = self.procs[service][i]
        proc.start()
        await proc.ready(90)

    async def restart_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.stop()
        self.postgres.start()

    def stop(self) -> None:
        """SIGTERM every instance at once (as a rollout would), then wait for them together;
        whatever has not exited after 20 s is killed."""
        procs = [p.proc for instances in self.procs.values() for p in instances if p.proc]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()

    def logs(self) -> str:
        return "\n".join(
            p.log_path.read_text(errors="replace")
            for instances in self.procs.values()
            for p in instances
            if p.log_path.exists()
        )
