"""The MTProto gateway's app: its dependencies (bootstrap.py) built at start, the lease view
and ownership loops, the command consumer and the HTTP API."""

from __future__ import annotations

from typing import Any

from nats.aio.msg import Msg

from switchboard.mtproto import api, commands, erasure, health
from switchboard.mtproto.bootstrap import Gateway, bootstrap
from switchboard.mtproto.leases import new_owner_id
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.mtproto.ttl import Parking
from switchboard.runtime import subscribers
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.db import load_migrations
from switchboard.runtime.deps import NotStartedError, Wired
from switchboard.runtime.integrations import add_integrations_route
from switchboard.runtime.logging import register_secret
from switchboard.runtime.service import Runtime
from switchboard.runtime.settings import parse_keyring

SCHEMA = "mtproto"


def create_app(settings: MtprotoSettings) -> ServiceApp:
    """Build the gateway app; connections are made by its lifespan, never at import."""
    keys = settings.encryption_keys.get_secret_value()
    register_secret(keys)
    for secret in (settings.admin_token, settings.api_hash):
        if secret is not None:
            register_secret(secret.get_secret_value())
    for proxy in settings.proxy_pool:  # the pool's credentials never reach logs either
        for value in (proxy.password, proxy.secret):
            if value:
                register_secret(value)
    keyring = Keyring.from_mapping(parse_keyring(keys))
    owner = new_owner_id(settings.instance_id)
    gateway: Wired[Gateway] = Wired("mtproto")

    async def start(rt: Runtime) -> None:
        gw = await bootstrap(rt, settings, keyring, owner)
        gateway.set(gw)
        view, ownership = gw.view, gw.ownership
        rt.spawn("lease-view", lambda: view.run(rt.stop))
        rt.spawn("ownership", lambda: ownership.run(rt.stop))
        assert rt.pool is not None
        handler_deps = commands.CommandDeps(
            rt.bus, gw.sessions, gw.state, gw.login, parking=Parking(rt.pool)
        )

        async def command(msg: Msg) -> bool | None:
            return await commands.handle(handler_deps, msg)

        async def erase(msg: Msg) -> None:
            await erasure.handle(rt.pool, msg)

        consumers = {commands.SUBSCRIPTION: command, erasure.SUBSCRIPTION: erase}
        subscribers.spawn(rt, "commands", consumers)

    app = service_app(
        service="mtproto",
        settings=settings,
        start=start,
        title="Switchboard MTProto gateway",
        description="Telegram user sessions: login, single ownership by lease, live updates "
        "and backfill as conv events, sends as a user. Every route needs the admin token.",
        migrations=load_migrations("switchboard.mtproto"),
        schema=SCHEMA,
    )
    api.install(app, settings, gateway)

    def integrations() -> dict[str, dict[str, Any]]:
        """The sessions this instance owns (each instance reports its own)."""
        try:
            runners = list(gateway().ownership.runners.items())
        except NotStartedError:  # no sessions owned yet
            runners = []
        return health.report((sid, runner.health) for sid, runner in runners)

    add_integrations_route(
        app,
        integrations,
        "Per session this instance owns: connection state, last success and failure "
        "(with the reason), p95 latency of recent calls, flood waits, and the probe (get_me)",
    )
    return app
