"""The sandbox: every fake provider on one port under its prefix, plus `/_sandbox` control.

`Sandbox` is the Python handle tests hold (providers, recorder, faults); `create_app`
builds the ASGI app the CLI serves. Each provider can also be served alone at root.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from switchboard.sandbox.clock import Clock, SystemClock
from switchboard.sandbox.config import SandboxConfig
from switchboard.sandbox.control import control_routes
from switchboard.sandbox.faults import FaultInjector, FaultRule, FaultSpec
from switchboard.sandbox.metacapi.provider import MetaCapiProvider
from switchboard.sandbox.mtproto.provider import MtprotoProvider
from switchboard.sandbox.mtproto_wire.server import WireServer
from switchboard.sandbox.provider import Core, Provider, provider_asgi
from switchboard.sandbox.recorder import Recorder
from switchboard.sandbox.sendpulse.provider import SendPulseProvider
from switchboard.sandbox.telegram.provider import TelegramProvider
from switchboard.sandbox.viber.provider import ViberProvider
from switchboard.sandbox.whatsapp.provider import WhatsAppProvider


class Sandbox:
    """One sandbox instance: shared core plus the registered providers."""

    def __init__(self, config: SandboxConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or SandboxConfig()
        self.core = Core(clock=clock or SystemClock(), record_limit=self.config.record_limit)
        self.telegram = TelegramProvider(self.core, self.config.telegram)
        self.sendpulse = SendPulseProvider(self.core, self.config.sendpulse)
        self.metacapi = MetaCapiProvider(self.core, self.config.metacapi)
        self.whatsapp = WhatsAppProvider(self.core, self.config.whatsapp)
        self.viber = ViberProvider(self.core, self.config.viber)
        self.mtproto = MtprotoProvider(self.core, self.config.mtproto)
        self.providers: dict[str, Provider] = {}
        for provider in (
            self.telegram,
            self.sendpulse,
            self.metacapi,
            self.whatsapp,
            self.viber,
            self.mtproto,
        ):
            self.add_provider(provider)
        self.mtproto_wire = WireServer(self.mtproto, self.config.mtproto_wire)
        if self.config.demo:
            self.install_demo()

    @property
    def clock(self) -> Clock:
        return self.core.clock

    @property
    def recorder(self) -> Recorder:
        return self.core.recorder

    @property
    def faults(self) -> FaultInjector:
        return self.core.faults

    def add_provider(self, provider: Provider) -> None:
        """Register a provider; it is mounted at `provider.prefix` by `app()`."""
        if provider.name in self.providers:
            raise ValueError(f"provider {provider.name!r} is already registered")
        self.providers[provider.name] = provider

    def install_demo(self) -> None:
        """Register the dev-stack demo accounts (Telegram bot `100000001:demo`)."""
        self.telegram.add_demo_bot()
        self.sendpulse.add_demo_account()
        self.metacapi.add_demo_pixel()
        self.whatsapp.add_demo_number()
        self.viber.add_demo_bot()

    def set_fault(
        self, provider: str | None = None, account: str | int | None = None, **spec: Any
    ) -> FaultRule:
        """Inject faults, e.g. `set_fault("telegram", bot_token, error_rate=0.5, seed=1)`."""
        if provider is not None and provider not in self.providers:
            raise ValueError(f"unknown provider {provider!r}")
        key = None
        if account is not None:
            key = (
                self.providers[provider].normalize_account(str(account))
                if provider is not None
                else str(account)
            )
        if spec.get("methods") is not None:
            spec["methods"] = tuple(spec["methods"])
        return self.core.faults.set(FaultSpec(**spec), provider=provider, account=key)

    def clear_faults(self) -> None:
        self.core.faults.clear_all()

    async def reset(self) -> None:
        """Forget everything: records, faults, provider state; demo accounts come back."""
        self.core.recorder.clear()
        self.core.faults.clear_all()
        for provider in self.providers.values():
            await provider.reset()
        self.mtproto_wire.reset()
        if self.config.demo:
            self.install_demo()

    async def aclose(self) -> None:
        """Stop background work (webhook workers, traffic jobs, the MTProto TCP server) and
        the HTTP client."""
        await self.mtproto_wire.stop()
        for provider in self.providers.values():
            await provider.aclose()
        await self.core.http.aclose()

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        for provider in self.providers.values():
            await provider.start()
        if self.config.mtproto_wire.enabled:
            await self.mtproto_wire.start()
        try:
            yield
        finally:
            await self.aclose()

    def app(self) -> Starlette:
        """All providers under their prefixes (`/telegram`, ...) plus `/_sandbox`."""
        routes: list[Any] = [
            Mount("/_sandbox", routes=control_routes(self)),
            Route("/mtproto/server", self._mtproto_server),
        ]
        routes += [
            Mount(p.prefix, app=provider_asgi(p, self.core)) for p in self.providers.values()
        ]
        app = Starlette(routes=routes, lifespan=self._lifespan)
        app.state.sandbox = self
        return app

    async def _mtproto_server(self, request: Request) -> JSONResponse:
        """The wire-level MTProto server's descriptor (host, port, dc_id, RSA key)."""
        if not self.mtproto_wire.running:
            return JSONResponse({"error": "MTPROTO_WIRE_NOT_RUNNING", "code": 503}, status_code=503)
        return JSONResponse(self.mtproto_wire.descriptor(request.url.hostname))

    def provider_app(self, name: str) -> Starlette:
        """One provider served at root (its real paths), plus `/_sandbox` control."""
        provider = self.providers[name]
        routes = [
            Mount("/_sandbox", routes=control_routes(self)),
            Mount("", app=provider_asgi(provider, self.core)),
        ]
        app = Starlette(routes=routes, lifespan=self._lifespan)
        app.state.sandbox = self
        return app


def create_app(config: SandboxConfig | None = None, *, clock: Clock | None = None) -> Starlette:
    """The combined sandbox app; the `Sandbox` handle is at `app.state.sandbox`."""
    return Sandbox(config, clock=clock).app()
