"""The MTProto gateway's composition root: the session store, the lease view and ownership
loop, the command consumer and the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg

from switchboard.events import Event
from switchboard.mtproto import api, commands, health
from switchboard.mtproto.adapters import make_adapter
from switchboard.mtproto.leases import LeaseView, new_owner_id
from switchboard.mtproto.login import LoginDeps
from switchboard.mtproto.ownership import Ownership
from switchboard.mtproto.publisher import ConvPublisher
from switchboard.mtproto.runner import Deps, SessionRunner
from switchboard.mtproto.sessions import SessionStore
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.mtproto.signin_caps import SignInAttempts, SignInCaps
from switchboard.mtproto.state import StateStore
from switchboard.mtproto.ttl import Parking
from switchboard.runtime import pii, subscribers
from switchboard.runtime.accounts import AccountStore
from switchboard.runtime.app import ServiceApp, service_app
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.db import load_migrations
from switchboard.runtime.integrations import add_integrations_route
from switchboard.runtime.logging import register_secret
from switchboard.runtime.objectstore import open_store
from switchboard.runtime.service import Runtime
from switchboard.runtime.settings import parse_keyring

SCHEMA = "mtproto"


@dataclass
class Gateway:
    """What the HTTP API needs once the service has started."""

    settings: MtprotoSettings
    bus: Bus
    sessions: SessionStore
    state: StateStore
    ownership: Ownership
    view: LeaseView
    login: LoginDeps
    owner: str


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
    holder: dict[str, Gateway] = {}

    async def start(rt: Runtime) -> None:
        assert rt.pool is not None
        adapter, close_adapter = make_adapter(settings)
        rt.on_close(close_adapter)
        sessions = SessionStore(rt.pool, keyring)
        state = StateStore(rt.pool)
        leases = await rt.bus.kv("leases")
        view = LeaseView(leases)
        deps = Deps(
            adapter=adapter,
            sessions=sessions,
            state=state,
            bus=rt.bus,
            conv=ConvPublisher(rt.bus, await rt.bus.kv("dedup"), await pii.start(rt)),
            settings=settings,
            owner=owner,
            accounts=AccountStore(await rt.bus.kv("accounts"), keyring),
            objects=await open_store(settings.objects),
        )
        assert deps.objects is not None
        rt.on_close(deps.objects.close)
        ownership = Ownership(
            kv=leases,
            view=view,
            sessions=sessions,
            settings=settings,
            owner=owner,
            make_runner=lambda sid, lease: SessionRunner(deps, sid, lease),
        )

        async def emit(event: Event, workspace_id: str) -> None:
            await rt.bus.publish(event, workspace_id=workspace_id)

        login = LoginDeps(
            adapter=adapter,
            store=sessions,
            emit=emit,
            hold=ownership.hold,
            api_id=settings.api_id,
            api_hash=settings.api_hash.get_secret_value() if settings.api_hash else None,
            code_ttl_s=settings.login_code_ttl_s,
            attempts=SignInAttempts(
                rt.pool,
                SignInCaps(
                    settings.signin_max_per_phone,
                    settings.signin_max_per_workspace,
                    settings.signin_window_s,
                ),
            ),
        )
        holder["gateway"] = Gateway(
            settings, rt.bus, sessions, state, ownership, view, login, owner
        )
        rt.spawn("lease-view", lambda: view.run(rt.stop))
        rt.spawn("ownership", lambda: ownership.run(rt.stop))
        handler_deps = commands.CommandDeps(
            rt.bus, sessions, state, login, parking=Parking(rt.pool)
        )

        async def command(msg: Msg) -> bool | None:
            return await commands.handle(handler_deps, msg)

        consumers = {commands.SUBSCRIPTION: command}
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
    api.install(app, settings, lambda: holder["gateway"])

    def integrations() -> dict[str, dict[str, Any]]:
        """The sessions this instance owns (each instance reports its own)."""
        gw = holder.get("gateway")
        runners = gw.ownership.runners.items() if gw else ()
        return health.report((sid, runner.health) for sid, runner in runners)

    add_integrations_route(
        app,
        integrations,
        "Per session this instance owns: connection state, last success and failure "
        "(with the reason), p95 latency of recent calls, flood waits, and the probe (get_me)",
    )
    return app
