"""Per-session proxies: health checks, rotation to the next healthy proxy, and a clear
event when none works.

A session's candidates are its own proxy (stored with it) and then the gateway's pool
(``SWITCHBOARD_MTPROTO_PROXIES``). Before each connect the runner asks
:class:`SessionProxies` for a proxy: the candidates are checked in order from the one in
use (a SOCKS5 proxy must open a tunnel to the session's data center, an MTProxy must accept
a TCP connection) and the first healthy one is used; moving to another announces
``mtproto.proxy_switched``, and finding none announces ``mtproto.proxies_unavailable`` once
per outage and raises DisconnectedError, so the runner retries with backoff.

A proxy can pass its check and still not carry the session (the MTProto connect through it
fails), or fail its check later while the session is connected (the runner checks it every
``proxy_check_interval_s``): either way the runner reports it with :meth:`failed`, and the
next choice starts after it, so the session rotates instead of retrying the same proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from python_socks import ProxyType
from python_socks.async_.asyncio import Proxy as SocksProxy

from switchboard.events import Event
from switchboard.events.catalog.mtproto import ProxiesUnavailable, ProxyProbe, ProxySwitched
from switchboard.mtproto.ports import DisconnectedError, Proxy, SessionConfig

# A health check of a proxy for a session: None when the proxy works, else why not.
Check = Callable[[Proxy, SessionConfig], Awaitable[str | None]]
# Where a session connects to (its data center), for the tunnel a SOCKS5 check opens.
Address = Callable[[SessionConfig], tuple[str, int]]
Emit = Callable[[Event], Awaitable[None]]


def parse_proxy(url: str) -> Proxy:
    """``socks5://[user:password@]host:port`` or ``mtproxy://<hex secret>@host:port``
    (ValueError naming what is wrong)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("socks5", "mtproxy"):
        raise ValueError(f"proxy {url!r}: the scheme must be socks5 or mtproxy")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"proxy {url!r}: bad port") from exc
    if not parts.hostname or not port:
        raise ValueError(f"proxy {url!r}: needs host and port")
    user = unquote(parts.username) if parts.username else None
    secret = unquote(parts.password) if parts.password else None
    if parts.scheme == "mtproxy":
        if not user:
            raise ValueError(f"proxy {url!r}: an MTProxy needs its secret as mtproxy://secret@")
        return Proxy(type="mtproxy", host=parts.hostname, port=port, secret=user)
    return Proxy(type="socks5", host=parts.hostname, port=port, username=user, password=secret)


def label(proxy: Proxy) -> str:
    """A proxy as events and logs name it: never its credentials."""
    return f"{proxy.type}://{proxy.host}:{proxy.port}"


def candidates(own: Proxy | None, pool: Sequence[Proxy]) -> list[Proxy]:
    """The session's own proxy first, then the pool's, each once."""
    found: list[Proxy] = []
    for proxy in [own, *pool]:
        if proxy is not None and proxy not in found:
            found.append(proxy)
    return found


def health_check(address: Address | None, timeout: float) -> Check:
    """The check: a SOCKS5 proxy must open a tunnel to ``address(config)`` (the session's
    data center); an MTProxy (or a SOCKS5 proxy when no address is known) must accept a TCP
    connection."""

    async def check(proxy: Proxy, config: SessionConfig) -> str | None:
        try:
            if proxy.type == "socks5" and address is not None:
                host, port = address(config)
                socks = SocksProxy(ProxyType.SOCKS5, proxy.host, proxy.port, proxy.username,
                                   proxy.password, rdns=True)  # fmt: skip
                sock = await socks.connect(host, port, timeout=timeout)
                sock.close()
            else:
                async with asyncio.timeout(timeout):
                    _, writer = await asyncio.open_connection(proxy.host, proxy.port)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    return check


@dataclass
class SessionProxies:
    """Picks the proxy a session connects through, announcing switches and outages."""

    session_id: str
    pool: Sequence[Proxy]
    check: Check
    emit: Emit
    current: Proxy | None = None
    down: bool = False  # no proxy carried the session since the outage was announced
    skipped: list[ProxyProbe] = field(default_factory=list)
    failure: ProxyProbe | None = None  # the current proxy failed the session (``failed``)

    def failed(self, proxy: Proxy, error: str) -> None:
        """``proxy`` did not carry the session (its MTProto connect failed, or a check while
        connected did): the next :meth:`apply` tries the others first."""
        if proxy == self.current:
            self.failure = ProxyProbe(proxy=label(proxy), error=error[:300])

    def connected(self) -> None:
        """The session connected: a later outage is announced again."""
        self.down = False

    async def apply(self, config: SessionConfig) -> SessionConfig:
        """``config`` with the proxy to use now (unchanged when it has no candidates)."""
        options = candidates(config.proxy, self.pool)
        if not options:
            return config
        start = options.index(self.current) if self.current in options else 0
        tried: list[ProxyProbe] = []
        order = [options[(start + i) % len(options)] for i in range(len(options))]
        if self.failure is not None and self.current in options:
            # rotate to the others; the failed one is tried again in the round after
            tried.append(self.failure)
            order = order[1:]
        self.failure = None
        for proxy in order:
            error = await self.check(proxy, config)
            if error is None:
                await self._chose(proxy, tried)
                return replace(config, proxy=proxy)
            tried.append(ProxyProbe(proxy=label(proxy), error=error))
        if not self.down:
            self.down = True
            await self.emit(
                ProxiesUnavailable(session_id=self.session_id, at=datetime.now(UTC), tried=tried)
            )
        raise DisconnectedError(f"no proxy works ({len(tried)} tried)")

    async def _chose(self, proxy: Proxy, tried: list[ProxyProbe]) -> None:
        previous, self.current = self.current, proxy
        if proxy == previous or (previous is None and not tried):
            return  # the first choice, taken without skipping any: nothing to announce
        await self.emit(
            ProxySwitched(
                session_id=self.session_id,
                at=datetime.now(UTC),
                proxy=label(proxy),
                previous=label(previous) if previous else None,
                skipped=tried,
            )
        )
