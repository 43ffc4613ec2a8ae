"""Per-session proxies through the real Telethon adapter: a session whose own SOCKS5 proxy
is dead rotates to the pool's healthy one (``mtproto.proxy_switched``) and connects to the
wire-level MTProto fake through it; when every proxy is dead the gateway says so
(``mtproto.proxies_unavailable``) and stays disconnected."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from switchboard.mtproto.ports import Proxy
from switchboard.mtproto.proxies import candidates, label, parse_proxy
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.runtime.testing import eventually
from switchboard.sandbox.socks5 import Socks5Proxy

from .mtproto_support import API_HASH, API_ID, KEY, World, wait_for_event, world


def test_proxy_urls_parse_and_name_themselves_without_credentials() -> None:
    socks = parse_proxy("socks5://ann:p%40ss@10.0.0.1:1080")
    assert socks == Proxy("socks5", "10.0.0.1", 1080, username="ann", password="p@ss")
    assert label(socks) == "socks5://10.0.0.1:1080"
    mt = parse_proxy("mtproxy://dd0123456789abcdef0123456789abcdef@proxy.example:443")
    assert (mt.type, mt.secret, mt.port) == ("mtproxy", "dd0123456789abcdef0123456789abcdef", 443)
    for bad in ("http://h:1", "socks5://h", "mtproxy://h:443", "socks5://h:notaport"):
        with pytest.raises(ValueError, match="proxy"):
            parse_proxy(bad)


def test_the_sessions_own_proxy_comes_first_and_each_once() -> None:
    own = Proxy("socks5", "a", 1)
    pool = [Proxy("socks5", "b", 2), own, Proxy("mtproxy", "c", 3, secret="s")]
    assert [p.host for p in candidates(own, pool)] == ["a", "b", "c"]
    assert candidates(None, []) == []


def test_settings_refuse_a_bad_proxy_naming_it() -> None:
    with pytest.raises(ValueError, match="ftp://x:1"):
        MtprotoSettings(encryption_keys=KEY, proxies="socks5://ok:1,ftp://x:1")


async def _session_through(
    w: World, phone: str, session: str, proxy_port: int, **gateway: Any
) -> Callable[[], Awaitable[bool]]:
    """A new user's session put on a Telethon gateway (``gateway`` settings) to connect
    through the SOCKS5 proxy on ``proxy_port``; answers whether it is connected now."""
    reader, _ = w.fake.add_user(phone)
    issued = w.box.mtproto_wire.issue_session(reader)
    base = await w.gateway(adapter="telethon", **gateway)
    async with w.http(base) as http:
        r = await http.put(
            f"/v1/sessions/{session}",
            json={"session": issued["session"], "api_id": API_ID, "api_hash": API_HASH,
                  "proxy": {"type": "socks5", "host": "127.0.0.1", "port": proxy_port}},
        )  # fmt: skip
        assert r.status_code == 201, r.text
    return functools.partial(w.connected, issued["key_id"])


async def test_a_dead_proxy_is_rotated_away_and_none_working_is_announced(
    nats_url: str, postgres_url: str
) -> None:
    dead = await Socks5Proxy().start()
    await dead.stop()  # nothing listens on its port any more
    alive = await Socks5Proxy(username="gw", password="tunnel-secret").start()
    async with world(nats_url, postgres_url) as w:
        connected = await _session_through(
            w, "15550505050", "proxied", dead.port, instance_id="proxies", proxies=alive.url
        )
        switched = await wait_for_event(nats_url, "mtproto.proxy_switched", session_id="proxied")
        assert switched.model.proxy == f"socks5://127.0.0.1:{alive.port}"  # type: ignore[attr-defined]
        skipped = switched.model.skipped  # type: ignore[attr-defined]
        assert [s.proxy for s in skipped] == [f"socks5://127.0.0.1:{dead.port}"]
        await eventually(connected, timeout=30, message="connected through the live proxy")
        assert alive.connects >= 2  # the health check's tunnel, then the session's

        await alive.stop()  # now every proxy is dead: the session drops and cannot return
        down = await wait_for_event(nats_url, "mtproto.proxies_unavailable", session_id="proxied")
        tried = [t.proxy for t in down.model.tried]  # type: ignore[attr-defined]
        assert sorted(tried) == sorted(
            [f"socks5://127.0.0.1:{dead.port}", f"socks5://127.0.0.1:{alive.port}"]
        )
        assert not await connected()


async def test_a_proxy_that_goes_bad_while_connected_is_rotated_away(
    nats_url: str, postgres_url: str
) -> None:
    """The proxy in use is checked again while the session is connected: when it stops
    opening tunnels (the session's own tunnel still relays), the session moves to the pool's
    next proxy instead of waiting for its connection to die."""
    own = await Socks5Proxy().start()
    spare = await Socks5Proxy().start()
    async with world(nats_url, postgres_url) as w:
        connected = await _session_through(
            w,
            "15550505051",
            "watched",
            own.port,
            instance_id="watch",
            proxies=spare.url,
            proxy_check_interval_s=0.2,
        )
        await eventually(connected, timeout=30, message="connected through its own proxy")
        assert spare.connects == 0
        own.refuse_new = True  # open tunnels still relay: only a new check can tell
        switched = await wait_for_event(nats_url, "mtproto.proxy_switched", session_id="watched")
        model = switched.model
        assert model.proxy == f"socks5://127.0.0.1:{spare.port}"  # type: ignore[attr-defined]
        assert model.previous == f"socks5://127.0.0.1:{own.port}"  # type: ignore[attr-defined]
        assert [s.proxy for s in model.skipped] == [model.previous]  # type: ignore[attr-defined]

        async def through_spare() -> bool:
            return spare.connects >= 2 and await connected()  # the check, then the session

        await eventually(through_spare, timeout=30, message="connected through the spare")
    await own.stop()
    await spare.stop()


async def test_a_proxy_that_passes_its_check_but_fails_the_connect_is_rotated_away(
    nats_url: str, postgres_url: str
) -> None:
    """A proxy that opens tunnels but carries no MTProto passes its health check; the failed
    connect through it moves the session to the next proxy rather than retrying it."""
    own = await Socks5Proxy(drop_tunnels=True).start()
    spare = await Socks5Proxy().start()
    async with world(nats_url, postgres_url) as w:
        connected = await _session_through(
            w, "15550505052", "rotated", own.port, instance_id="rotate", proxies=spare.url
        )
        switched = await wait_for_event(
            nats_url, "mtproto.proxy_switched", session_id="rotated", timeout=30
        )
        model = switched.model
        assert model.proxy == f"socks5://127.0.0.1:{spare.port}"  # type: ignore[attr-defined]
        assert model.previous == f"socks5://127.0.0.1:{own.port}"  # type: ignore[attr-defined]
        [skipped] = model.skipped  # type: ignore[attr-defined]
        assert skipped.proxy == model.previous
        assert skipped.error.startswith("connect failed")
        await eventually(connected, timeout=30, message="connected through the spare")
        assert own.connects >= 2  # its check passed, and the connect went through it
    await own.stop()
    await spare.stop()


def test_a_proxy_check_tunnels_to_the_sessions_own_data_center() -> None:
    from telethon.crypto import AuthKey
    from telethon.sessions import StringSession

    from switchboard.mtproto.ports import SessionConfig
    from switchboard.mtproto.telethon_adapter import DataCenter, TelethonAdapter

    moved = StringSession()
    moved.set_dc(4, "10.1.2.3", 443)
    moved.auth_key = AuthKey(bytes(256))
    config = SessionConfig("s", API_ID, API_HASH, StringSession.save(moved))
    assert TelethonAdapter().address(config) == ("10.1.2.3", 443)
    fresh = SessionConfig("s", API_ID, API_HASH, "")  # a new login starts at DC 2
    assert TelethonAdapter().address(fresh) == ("149.154.167.51", 443)
    sandbox = TelethonAdapter(data_center=DataCenter(2, "127.0.0.1", 4444))
    assert sandbox.address(config) == ("127.0.0.1", 4444)


async def test_an_mtproxy_check_needs_a_listening_port() -> None:
    from switchboard.mtproto.ports import SessionConfig
    from switchboard.mtproto.proxies import health_check

    listening = await Socks5Proxy().start()  # any TCP listener will do for this check
    closed = await Socks5Proxy().start()
    await closed.stop()
    check = health_check(None, timeout=5.0)
    config = SessionConfig("s", API_ID, API_HASH, "")
    try:
        secret = "0123456789abcdef0123456789abcdef"
        up = Proxy("mtproxy", "127.0.0.1", listening.port, secret=secret)
        assert await check(up, config) is None
        down = Proxy("mtproxy", "127.0.0.1", closed.port, secret=secret)
        error = await check(down, config)
        assert error is not None
        assert error.startswith("ConnectionRefusedError")
    finally:
        await listening.stop()


async def test_rotation_after_a_failure_tries_the_others_then_says_none_works() -> None:
    """The choice, without a network: after ``failed`` the next round skips the failed
    proxy (named with its error in ``skipped``); when no other passes, the outage is
    announced once until a connect succeeds, and the failed one is tried again after."""
    from switchboard.events import Event
    from switchboard.mtproto.ports import DisconnectedError, SessionConfig
    from switchboard.mtproto.proxies import SessionProxies

    own, spare = Proxy("socks5", "own", 1), Proxy("socks5", "spare", 2)
    dead: set[Proxy] = set()  # what fails its health check
    emitted: list[Event] = []

    async def check(proxy: Proxy, _: SessionConfig) -> str | None:
        return "refused" if proxy in dead else None

    async def emit(event: Event) -> None:
        emitted.append(event)

    proxies = SessionProxies("s", [spare], check, emit)
    config = SessionConfig("s", API_ID, API_HASH, "", proxy=own)
    assert (await proxies.apply(config)).proxy == own
    assert emitted == []
    proxies.failed(own, "connect failed: reset")
    assert (await proxies.apply(config)).proxy == spare
    [switched] = emitted
    assert [(s.proxy, s.error) for s in switched.skipped] == [  # type: ignore[attr-defined]
        ("socks5://own:1", "connect failed: reset")
    ]
    dead.add(own)
    proxies.failed(spare, "connect failed: reset")
    with pytest.raises(DisconnectedError):
        await proxies.apply(config)
    assert [e.name for e in emitted] == ["mtproto.proxy_switched", "mtproto.proxies_unavailable"]
    assert (await proxies.apply(config)).proxy == spare  # the round after: tried again
    proxies.failed(spare, "connect failed: reset")
    with pytest.raises(DisconnectedError):
        await proxies.apply(config)
    assert len(emitted) == 2  # the same outage: not announced twice
    assert (await proxies.apply(config)).proxy == spare
    proxies.connected()
    proxies.failed(spare, "connect failed: reset")
    with pytest.raises(DisconnectedError):
        await proxies.apply(config)
    assert emitted[-1].name == "mtproto.proxies_unavailable"  # a new outage, announced again
    assert len(emitted) == 3
