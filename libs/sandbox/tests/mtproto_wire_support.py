"""Fixtures for the wire-level MTProto fake: a started wire server and stock Telethon
clients pointed at it (its RSA key registered, its address set, the config cache reset)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest
from telethon import TelegramClient
from telethon.crypto import rsa
from telethon.sessions import StringSession

from switchboard.sandbox import Sandbox
from switchboard.sandbox.mtproto.world import FakeUser
from switchboard.sandbox.testing import wire_sandbox

API_ID, API_HASH = 12345, "0123456789abcdef0123456789abcdef"
WAIT = 15.0  # generous: the machine is shared; conditions, not sleeps, decide


def client_for(descriptor: dict[str, Any], session: str = "", **options: Any) -> TelegramClient:
    """A stock Telethon client that trusts the fake's key and connects to its address."""
    rsa.add_key(descriptor["rsa_public_key"], old=False)
    TelegramClient._config = None  # cached dc_options of an earlier server must not leak
    options.setdefault("connection_retries", 1)
    options.setdefault("retry_delay", 0)
    client = TelegramClient(StringSession(session), API_ID, API_HASH, **options)
    client.session.set_dc(descriptor["dc_id"], descriptor["host"], descriptor["port"])
    return client


@dataclass
class WireEnv:
    """A sandbox whose wire server runs, plus the clients a test opened (closed at the end)."""

    sandbox: Sandbox
    clients: list[TelegramClient] = field(default_factory=list)

    @property
    def descriptor(self) -> dict[str, Any]:
        return self.sandbox.mtproto_wire.descriptor()

    def client(self, session: str = "", **options: Any) -> TelegramClient:
        client = client_for(self.descriptor, session, **options)
        self.clients.append(client)
        return client

    async def signed_in(self, user: FakeUser, **options: Any) -> TelegramClient:
        """A connected client already signed in as `user` (no login round trips)."""
        issued = self.sandbox.mtproto_wire.issue_session(user)
        client = self.client(issued["session"], **options)
        await asyncio.wait_for(client.connect(), WAIT)
        return client

    def alice_and_bob(self) -> tuple[FakeUser, FakeUser]:
        """Two users who can find each other by name (``alice_wire``, ``bob_wire``)."""
        mtproto = self.sandbox.mtproto
        alice, _ = mtproto.add_user("15550006666", first_name="Alice", username="alice_wire")
        bob, _ = mtproto.add_user("15550007777", first_name="Bob", username="bob_wire")
        return alice, bob

    async def chat(self) -> Chat:
        """Alice and Bob, each signed in on a client of their own."""
        alice, bob = self.alice_and_bob()
        return Chat(alice, bob, await self.signed_in(alice), await self.signed_in(bob))


class Chat(NamedTuple):
    """Two users signed in on the wire: ``a`` is Alice's client, ``b`` Bob's."""

    alice: FakeUser
    bob: FakeUser
    a: TelegramClient
    b: TelegramClient


@pytest.fixture
async def wire() -> AsyncIterator[WireEnv]:
    clients: list[TelegramClient] = []
    async with wire_sandbox(clients) as sandbox:
        yield WireEnv(sandbox, clients)


@asynccontextmanager
async def collecting(
    client: TelegramClient, event: Any
) -> AsyncIterator[tuple[list[Any], Callable[[int], Any]]]:
    """Collect `event`s on `client`; yields (events, wait_for_count)."""
    seen: list[Any] = []
    arrived = asyncio.Condition()

    async def handler(received: Any) -> None:
        async with arrived:
            seen.append(received)
            arrived.notify_all()

    async def wait_count(count: int) -> None:
        async def enough() -> None:
            async with arrived:
                await arrived.wait_for(lambda: len(seen) >= count)

        await asyncio.wait_for(enough(), WAIT)

    client.add_event_handler(handler, event)
    try:
        yield seen, wait_count
    finally:
        client.remove_event_handler(handler, event)
