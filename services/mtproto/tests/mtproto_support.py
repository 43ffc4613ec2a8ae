"""Test support for the gateway: a served sandbox with its fake Telegram, gateway settings and
apps on real NATS and Postgres, and readers of what the gateway published and stored."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from switchboard.events import Decoded, decode_message
from switchboard.mtproto.app import create_app
from switchboard.mtproto.ports import SessionConfig
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.mtproto.telethon_adapter import DataCenter, TelethonAdapter, TelethonClient
from switchboard.runtime import pii
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.sealing import seal
from switchboard.runtime.testing import eventually, serve_app
from switchboard.sandbox import Sandbox
from switchboard.sandbox.testing import serve, wire_sandbox

KEY = "m1:" + Keyring.generate_key()
ADMIN = "mtproto-admin-token"
OPERATOR = {"Authorization": f"Bearer {ADMIN}"}
DEMO_KEY = "mtproto-demo-key"  # workspace demo, every scope
OTHER_KEY = "mtproto-other-key"  # workspace other, every scope
AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}
API_ID = 12345
API_HASH = "0123456789abcdef0123456789abcdef"


def session_string(dc_id: int = 2) -> str:
    """A StringSession Telethon reads (a key no server knows): imports that never connect
    with it, where only what the API does with an import is tested."""
    from telethon.crypto import AuthKey
    from telethon.sessions import StringSession

    made = StringSession()
    made.set_dc(dc_id, "127.0.0.1", 443)
    made.auth_key = AuthKey(b"k" * 256)
    return str(made.save())


def keyring() -> Keyring:
    kid, _, material = KEY.partition(":")
    return Keyring({kid: base64.b64decode(material)}, kid)


def gateway_settings(
    nats_url: str, database_url: str, sandbox_url: str, **overrides: Any
) -> MtprotoSettings:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "database_url": database_url,
        "encryption_keys": KEY,
        "admin_token": ADMIN,
        "api_keys": f"{DEMO_KEY}=demo,{OTHER_KEY}=other",
        "adapter": "sandbox",
        "sandbox_url": sandbox_url,
        "api_id": API_ID,
        "api_hash": API_HASH,
        "lease_ttl_s": 3.0,
        "tick_s": 0.25,
        "send_interval_s": 0.0,
        "reconnect_initial_s": 0.1,
        "reconnect_max_s": 1.0,
        "http_port": 0,
        "log_json": True,
        "shutdown_grace_s": 10.0,
    }
    values.update(overrides)
    return MtprotoSettings(**values)


@dataclass
class World:
    """A served sandbox, and gateways started on demand against one NATS and Postgres."""

    box: Sandbox
    sandbox_url: str
    nats_url: str
    database_url: str
    stack: AsyncExitStack
    gateways: list[str] = field(default_factory=list)

    @property
    def fake(self) -> Any:
        return self.box.mtproto

    async def gateway(self, **overrides: Any) -> str:
        """Start a gateway in this event loop; its base URL."""
        settings = gateway_settings(self.nats_url, self.database_url, self.sandbox_url, **overrides)
        url = await self.stack.enter_async_context(serve_app(create_app(settings)))
        self.gateways.append(url)
        return url

    def http(self, base: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, headers=AUTH, timeout=30)

    async def import_session(self, base: str, session_id: str, session: str) -> None:
        async with self.http(base) as http:
            r = await http.put(
                f"/v1/sessions/{session_id}",
                json={"session": session, "api_id": API_ID, "api_hash": API_HASH,
                      "workspace_id": "demo"},
            )  # fmt: skip
            assert r.status_code == 201, r.text

    async def seller_and_buyer(
        self, phones: tuple[str, str], buyer: str, session_id: str
    ) -> tuple[Any, Any, str]:
        """A seller (the first phone) whose session is imported as ``session_id`` on a new
        gateway and connected, and a buyer with the username ``buyer``: (seller, buyer,
        the gateway's URL)."""
        seller, keys = self.fake.add_user(phones[0], first_name="Sal", sessions=1)
        customer, _ = self.fake.add_user(phones[1], first_name="Buyer", username=buyer)
        base = await self.gateway(instance_id="g1")
        await self.import_session(base, session_id, keys[0].session)
        await eventually(lambda: self.connected(keys[0].key_id), message="connected")
        return seller, customer, base

    async def connected(self, key_id: str) -> bool:
        log = self.fake.connection_log(key_id=key_id)
        return bool(log["active"])

    async def connect_session(self, base: str, user: Any, session_id: str) -> dict[str, Any]:
        """A wire session of ``user`` imported as ``session_id`` on the gateway at ``base``,
        returned once the gateway holds it connected."""
        issued: dict[str, Any] = self.box.mtproto_wire.issue_session(user)
        await self.import_session(base, session_id, issued["session"])
        await eventually(lambda: self.connected(issued["key_id"]), message="the session connected")
        return issued


@dataclass
class Wire:
    """The production Telethon adapter pointed at the sandbox's started wire-level fake, and
    the clients a test opened through it."""

    sandbox: Sandbox
    adapter: TelethonAdapter
    clients: list[TelethonClient]

    def client(self, session: str = "", session_id: str = "s1") -> TelethonClient:
        client = self.adapter.client(SessionConfig(session_id, API_ID, API_HASH, session))
        self.clients.append(client)
        return client

    def session_of(self, user: Any) -> str:
        return self.sandbox.mtproto_wire.issue_session(user)["session"]

    async def signed_in(self, user: Any) -> TelethonClient:
        """A client of ``user`` (a session issued by the fake, no login), connected."""
        client = self.client(self.session_of(user))
        await client.connect()
        return client

    async def reader_of(
        self, title: str, username: str, phone: str = "15550003333"
    ) -> tuple[Any, TelethonClient]:
        """A channel with one reader (``phone``), and the reader's client, connected."""
        mtproto = self.sandbox.mtproto
        reader, _ = mtproto.add_user(phone)
        channel = mtproto.add_channel(title, username, members=[reader])
        return channel, await self.signed_in(reader)


@asynccontextmanager
async def on_the_wire(timeout: float = 15.0) -> AsyncIterator[Wire]:
    """The adapter against a sandbox whose wire server listens; the clients opened through
    it are disconnected at the end."""
    clients: list[TelethonClient] = []
    async with wire_sandbox(clients) as sandbox:
        center = DataCenter.from_descriptor(sandbox.mtproto_wire.descriptor())
        yield Wire(sandbox, TelethonAdapter(timeout=timeout, data_center=center), clients)


@asynccontextmanager
async def world(nats_url: str, postgres_url: str) -> AsyncIterator[World]:
    box = Sandbox()
    async with serve(box.app()) as sandbox_url, AsyncExitStack() as stack:
        bus = await Bus.connect(nats_url, name="test-setup")
        await bus.provision()
        await bus.close()
        yield World(box, sandbox_url, nats_url, postgres_url, stack)


async def stream(nats_url: str, name: str, subject: str | None = None) -> list[Decoded]:
    """Every message of a stream (optionally one subject filter), opened (sealed personal
    data, as consumers open it) and decoded, in order."""
    stored = await raw_messages(nats_url, name, subject)
    bus = await Bus.connect(nats_url, name="test-opener")
    try:
        async with pii.using(bus) as keys:
            found = await keys.prefetch(data for _, _, data in stored)
            return [decode_message(s, h, keys.open_body(data, found)) for s, h, data in stored]
    finally:
        await bus.close()


async def raw_messages(
    nats_url: str, name: str, subject: str | None = None
) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message still stored in a stream, as (subject, headers, body), in order."""
    bus = await Bus.connect(nats_url, name="test-reader")
    try:
        info = await bus.js.stream_info(name)
        if not info.state.messages:
            return []
        sub = await bus.js.pull_subscribe(
            subject or (info.config.subjects or [">"])[0],
            durable=None,
            stream=name,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                filter_subjects=[subject] if subject else list(info.config.subjects or []),
            ),
        )
        out: list[tuple[str, dict[str, str], bytes]] = []
        pending = (await sub.consumer_info()).num_pending
        while len(out) < pending:
            try:
                msgs = await sub.fetch(min(1000, pending - len(out)), timeout=2)
            except (NatsTimeout, TimeoutError):
                break
            out += [(m.subject, dict(m.headers or {}), m.data) for m in msgs]
        await sub.unsubscribe()
        return out
    finally:
        await bus.close()


def sealed(command: str, session_id: str, field: str, value: str) -> str:
    """A secret sealed for the test gateway (its keyring), as a bus publisher does it."""
    return seal(keyring(), command, session_id, field, value)


async def wait_for_event(
    nats_url: str, name: str, *, stream_name: str = "MTPROTO", timeout: float = 15, **match: Any
) -> Decoded:
    """The first event called ``name`` whose fields equal ``match``."""

    async def found() -> Decoded | None:
        for d in await stream(nats_url, stream_name):
            if d.model.name == name and all(
                getattr(d.model, k, None) == v for k, v in match.items()
            ):
                return d
        return None

    return await eventually(found, timeout=timeout, interval=0.2, message=f"{name} {match}")
