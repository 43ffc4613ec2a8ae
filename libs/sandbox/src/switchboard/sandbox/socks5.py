"""A tiny SOCKS5 proxy (RFC 1928, CONNECT only, optional RFC 1929 username/password) for
tests: the MTProto gateway connects through it to the wire-level MTProto fake, and a test
can count what went through it or stop it to make it a dead proxy."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
from dataclasses import dataclass, field


@dataclass
class Socks5Proxy:
    """``start()`` listens on a free port of ``host``; ``connects`` counts the tunnels it
    opened, ``refused`` the clients it turned away (bad credentials, unreachable target).

    Faults: ``refuse_new`` turns new clients away while open tunnels keep relaying (a proxy
    going bad under a connected session); ``drop_tunnels`` opens each tunnel and closes it
    before relaying a byte (a proxy that passes a health check but carries nothing)."""

    host: str = "127.0.0.1"
    username: str | None = None
    password: str | None = None
    port: int = 0
    connects: int = 0
    refused: int = 0
    refuse_new: bool = False
    drop_tunnels: bool = False
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> Socks5Proxy:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Close the listener and every open tunnel (the proxy is dead from now on)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        auth = f"{self.username}:{self.password}@" if self.username else ""
        return f"socks5://{auth}{self.host}:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.refuse_new:
                self.refused += 1
                return
            target = await self._handshake(reader, writer)
            if target is not None and self.drop_tunnels:
                target[1].close()
            elif target is not None:
                await self._relay(reader, writer, *target)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        wanted = 0x02 if self.username else 0x00
        if version != 5 or wanted not in methods:
            writer.write(b"\x05\xff")
            self.refused += 1
            return None
        writer.write(bytes([5, wanted]))
        if wanted == 0x02:
            _, ulen = await reader.readexactly(2)
            user = (await reader.readexactly(ulen)).decode()
            (plen,) = await reader.readexactly(1)
            secret = (await reader.readexactly(plen)).decode()
            ok = (user, secret) == (self.username, self.password)
            writer.write(b"\x01\x00" if ok else b"\x01\x01")
            if not ok:
                self.refused += 1
                return None
        _, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif kind == 3:
            (size,) = await reader.readexactly(1)
            host = (await reader.readexactly(size)).decode()
        elif kind == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        else:
            self._reply(writer, 8)  # address type not supported
            return None
        (port,) = struct.unpack(">H", await reader.readexactly(2))
        if command != 1:
            self._reply(writer, 7)  # only CONNECT
            return None
        try:
            upstream = await asyncio.open_connection(host, port)
        except OSError:
            self._reply(writer, 5)  # connection refused
            return None
        self.connects += 1
        writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
        await writer.drain()
        return upstream

    def _reply(self, writer: asyncio.StreamWriter, code: int) -> None:
        writer.write(bytes([5, code, 0, 1]) + bytes(6))
        self.refused += 1

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            up_writer.close()
