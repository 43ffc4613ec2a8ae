"""A real 3-node NATS JetStream cluster on this machine, for chaos tests: nodes can be killed,
stopped and restarted on the same ports and data directories, like a pod coming back."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from nats.errors import Error as NatsError
from nats.js.errors import Error as JsError

from switchboard.events.streams import STREAMS
from switchboard.runtime.bus import Bus
from switchboard.runtime.embedded import EmbeddedNats, free_port
from switchboard.runtime.testing import eventually


async def _some(found: Awaitable[int | None]) -> int | None:
    """``eventually`` wants a truthy value: index 0 is a leader too."""
    i = await found
    return None if i is None else i + 1


@dataclass
class NatsCluster:
    """``size`` nats-servers with JetStream forming one cluster (routes to each other)."""

    root: Path
    size: int = 3
    name: str = "switchboard-test"
    # NATS's default (1 MB), as a production cluster: what ingest's body limit must meet
    max_payload: str | None = None
    nodes: list[EmbeddedNats] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated, as services take it."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> NatsCluster:
        cluster_ports = [free_port() for _ in range(self.size)]
        routes = [f"nats-route://127.0.0.1:{p}" for p in cluster_ports]
        for i, cport in enumerate(cluster_ports):
            node = EmbeddedNats(
                self.root / f"n{i}",
                cluster=self.name,
                cluster_port=cport,
                routes=[r for j, r in enumerate(routes) if j != i],
                server_name=f"n{i}",
                max_payload=self.max_payload,
            )
            self.nodes.append(node)
        for node in self.nodes:
            node.start()
        return self

    def kill(self, i: int) -> None:
        """SIGKILL one node (a crashed pod): no goodbye to the cluster."""
        self.nodes[i].kill()

    def restart(self, i: int) -> None:
        """Start a stopped node again with its ports and data directory."""
        self.nodes[i].start()

    async def leader(self, stream: str, timeout: float = 60.0) -> int:
        """The index of the node leading ``stream`` (a bucket is stream ``KV_<name>``), as
        the cluster reports it now; waits while it is electing one."""
        names = {node.server_name: i for i, node in enumerate(self.nodes)}

        async def ask() -> int | None:
            try:
                bus = await Bus.connect(self.url, name="cluster-probe", connect_timeout=1)
            except (OSError, NatsError):
                return None
            try:
                info = await bus.js.stream_info(stream)
            except (NatsError, JsError, TimeoutError):
                return None
            finally:
                await bus.close()
            leader = info.cluster.leader if info.cluster else None
            return names.get(leader) if leader else None

        found: int = await eventually(
            lambda: _some(ask()), timeout=timeout, message=f"a leader for {stream}"
        )
        return found - 1

    async def kill_leader(self, stream: str) -> int:
        """SIGKILL the node leading ``stream`` (asked of the cluster); returns its index."""
        i = await self.leader(stream)
        self.kill(i)
        return i

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every running node answers JetStream requests (a meta leader exists)."""

        async def ready() -> bool:
            for node in self.nodes:
                if node.proc is None:
                    continue
                try:
                    bus = await Bus.connect(node.url, name="cluster-probe", connect_timeout=1)
                except (OSError, NatsError):
                    return False
                try:
                    await bus.js.account_info()
                except (NatsError, JsError, TimeoutError):
                    return False
                finally:
                    await bus.close()
            return True

        await eventually(ready, timeout=timeout, message="JetStream cluster ready")

    async def wait_streams_current(self, timeout: float = 60.0) -> None:
        """Until every stream that exists has a leader and all its replicas are current,
        so a restarted node has caught up before the next fault."""

        async def current() -> bool:
            try:
                bus = await Bus.connect(self.url, name="cluster-probe", connect_timeout=1)
            except (OSError, NatsError):
                return False
            try:
                for spec in STREAMS:
                    try:
                        info = await bus.js.stream_info(spec.name)
                    except JsError:
                        continue  # not provisioned (yet)
                    cluster = info.cluster
                    if cluster is None or not cluster.leader:
                        return False
                    if any(not r.current or r.offline for r in cluster.replicas or []):
                        return False
                return True
            except (NatsError, TimeoutError):
                return False
            finally:
                await bus.close()

        await eventually(current, timeout=timeout, message="every stream replica current")
