"""Whether a host a caller named is on the public internet: the one check for every place a
tenant's URL makes this system open a connection (URL size probes, flows' webhook steps,
the files a Viber message links to), so that no caller can use it to reach or map what
listens inside the network (loopback, private, link-local and cloud metadata addresses).
``send_public`` is the one way to call such a URL when its redirects are to be followed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

from switchboard.runtime.errors import SwitchboardRuntimeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Send = Callable[[httpx.Request], Awaitable[httpx.Response]]
# As httpx and browsers allow (a CDN link usually takes one or two).
MAX_REDIRECTS = 5


async def resolved(host: str) -> list[IPAddress]:
    """Every address ``host`` resolves to now (none when it does not resolve)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def public(host: str) -> bool:
    """Whether every address ``host`` resolves to is a public one."""
    addresses = await resolved(host)
    return bool(addresses) and all(a.is_global for a in addresses)


class NotPublicError(SwitchboardRuntimeError, ValueError):
    """The URL's host does not resolve, or resolves to an address that is not public."""


async def pinned(url: str, *, private: bool = False) -> tuple[str, dict[str, str], dict[str, str]]:
    """``url`` with its host replaced by the address it resolves to now, and the ``Host``
    header and TLS server name (httpx's ``sni_hostname`` extension) that keep the request
    what it was: (url, headers, extensions). Connecting to the address checked, not to a
    second lookup of the name, is what stops a name that answers a public address to the
    check and a private one to the connection (DNS rebinding). Raises NotPublicError for a
    host that is not public, unless ``private``."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise NotPublicError(f"{url!r} names no host")
    addresses = await resolved(host)
    if not addresses:
        raise NotPublicError(f"{host!r} does not resolve")
    if not private and not all(a.is_global for a in addresses):
        raise NotPublicError(f"{host!r} is not a public address")
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    target = SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment).geturl()
    header = host if parts.port is None else f"{host}:{parts.port}"
    return target, {"host": header}, {"sni_hostname": host}


async def send_public(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    private: bool = False,
    send: Send | None = None,
) -> httpx.Response:
    """The answer to ``method`` on a tenant's ``url``, its body unread (the caller reads and
    closes it), redirects followed here: every hop must be an http(s) URL of a public host
    (``NotPublicError``; any host with ``private``) and is connected to at the address its
    check resolved (``pinned``); more than ``MAX_REDIRECTS`` is ``httpx.TooManyRedirects``.
    httpx following redirects itself would connect wherever a public URL sends it
    (``Location: http://169.254.169.254/``), after a second lookup of each name. ``send``
    sends one hop (default: streamed, redirects not followed), e.g. through a breaker."""
    sent = send or (lambda request: http.send(request, stream=True, follow_redirects=False))
    for _ in range(MAX_REDIRECTS + 1):
        if urlsplit(url).scheme not in ("http", "https"):
            raise NotPublicError(f"{url!r} is not an http(s) URL")
        target, host, extensions = await pinned(url, private=private)
        request = http.build_request(
            method, target, headers={**(headers or {}), **host}, extensions=extensions
        )
        response = await sent(request)
        location = response.headers.get("location")
        if not (response.is_redirect and location):
            return response
        await response.aclose()
        url = urljoin(url, location)
    raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", request=request)
