"""What every fake provider plugs into: the shared core and the provider contract.

A provider exposes its API routes (served at its prefix, or at root when started alone),
its control routes (under `/_sandbox/<name>/`), and how to read the account and method
of a raw request so faults and recording work before the provider parses anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from starlette.responses import Response
from starlette.routing import BaseRoute, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from switchboard.sandbox.clock import Clock, SystemClock
from switchboard.sandbox.faults import FaultInjector, FaultMiddleware
from switchboard.sandbox.recorder import Recorder, RecordingMiddleware
from switchboard.sandbox.webhooks import (
    Describe,
    HttpClientHolder,
    OrderedDelivery,
    RetryPolicy,
    describe_plainly,
)


@dataclass
class Core:
    """State shared by all providers of one sandbox: clock, recorder, faults, HTTP client."""

    clock: Clock = field(default_factory=SystemClock)
    recorder: Recorder = field(init=False)
    faults: FaultInjector = field(init=False)
    http: HttpClientHolder = field(default_factory=HttpClientHolder)
    record_limit: int = 100_000

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.clock, self.record_limit)
        self.faults = FaultInjector(self.clock)

    def webhook_queue(
        self,
        provider: str,
        account: str,
        policy: RetryPolicy,
        describe: Describe = describe_plainly,
    ) -> OrderedDelivery:
        """An account's ordered webhook queue, timed, sent and recorded by this core."""
        return OrderedDelivery(
            provider, account, self.recorder, self.clock, self.http, policy, describe
        )


class Provider(Protocol):
    """The contract a fake provider fulfils to be mounted in the sandbox."""

    name: str
    prefix: str

    def routes(self) -> list[BaseRoute]:
        """The provider API, with paths as the real provider has them."""
        ...

    def control_routes(self) -> list[BaseRoute]:
        """Provider-specific control endpoints, mounted under `/_sandbox/<name>`."""
        ...

    def classify(self, scope: Scope) -> tuple[str | None, str | None]:
        """(account, method) of a raw request, for fault scoping and recording."""
        ...

    def error_response(self, status: int, description: str) -> Response:
        """An error body in the provider's own shape."""
        ...

    def normalize_account(self, account: str) -> str:
        """The account key used in records and fault rules (e.g. bot id from a token)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """A JSON summary of the provider's state for the control API."""
        ...

    async def start(self) -> None:
        """Resume background work (queued webhook deliveries) when the app starts serving."""
        ...

    async def reset(self) -> None:
        """Forget all state (accounts, messages, queues, limits)."""
        ...

    async def aclose(self) -> None:
        """Stop background tasks (webhook workers, traffic jobs)."""
        ...


T = TypeVar("T")


def registered(ref: object, kind: type[T], find: Callable[[Any], T | None], what: str) -> T:
    """The registered object `ref` names (or `ref` itself); KeyError naming `what` if none."""
    if isinstance(ref, kind):
        return ref
    found = find(ref)
    if found is None:
        raise KeyError(f"no {what} {ref!r} in the sandbox")
    return found


class ApiRoutes(Protocol):
    def routes(self) -> list[BaseRoute]: ...


class ProviderBase:
    """Defaults of the provider contract: the API's routes, accounts keyed as given, nothing
    to start or stop."""

    api: ApiRoutes

    def routes(self) -> list[BaseRoute]:
        return self.api.routes()

    def normalize_account(self, account: str) -> str:
        return account

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def route_path(scope: Scope) -> str:
    """The request path relative to where the app is mounted."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def provider_asgi(provider: Provider, core: Core) -> ASGIApp:
    """The provider's routes behind fault injection, behind recording (which classifies the
    request for both)."""

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        await provider.error_response(404, "Not Found")(scope, receive, send)

    router = Router(routes=provider.routes(), default=not_found)
    faulty = FaultMiddleware(router, core.faults, provider.error_response)
    return RecordingMiddleware(faulty, core.recorder, provider.name, provider.classify)
