"""The gateway's composition root: its dependencies, built complete and typed once the
runtime is up (bus, database), before the service answers, and handed to the ownership loop,
the command consumer and the routes."""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.events import Event
from switchboard.mtproto.adapters import make_adapter
from switchboard.mtproto.leases import LeaseView
from switchboard.mtproto.login import LoginDeps
from switchboard.mtproto.ownership import Ownership
from switchboard.mtproto.publisher import ConvPublisher
from switchboard.mtproto.runner import Deps, SessionRunner
from switchboard.mtproto.sessions import SessionStore
from switchboard.mtproto.settings import MtprotoSettings
from switchboard.mtproto.signin_caps import SignInAttempts, SignInCaps
from switchboard.mtproto.state import StateStore
from switchboard.runtime import pii
from switchboard.runtime.accounts import AccountStore
from switchboard.runtime.bus import Bus
from switchboard.runtime.crypto import Keyring
from switchboard.runtime.objectstore import open_store
from switchboard.runtime.service import Runtime


@dataclass(frozen=True)
class Gateway:
    """Everything the gateway's loops, its command consumer and its routes use."""

    settings: MtprotoSettings
    bus: Bus
    sessions: SessionStore
    state: StateStore
    ownership: Ownership
    view: LeaseView
    login: LoginDeps
    owner: str


async def bootstrap(
    rt: Runtime, settings: MtprotoSettings, keyring: Keyring, owner: str
) -> Gateway:
    """The gateway's dependencies; the adapter and the object store close with the runtime."""
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
        now=rt.clock.utcnow,
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
        now=rt.clock.utcnow,
        attempts=SignInAttempts(
            rt.pool,
            SignInCaps(
                settings.signin_max_per_phone,
                settings.signin_max_per_workspace,
                settings.signin_window_s,
            ),
        ),
    )
    return Gateway(settings, rt.bus, sessions, state, ownership, view, login, owner)
