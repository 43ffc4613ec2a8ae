"""What the messaging fakes (Telegram, WhatsApp, Viber) share: accounts whose webhook queues
resume on start, generated traffic and its jobs, reset and close, and the control routes
for limits, settings, generated items and traffic. Each provider keeps only its own API,
its accounts' Python API and its traffic generator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from switchboard.sandbox.httpjson import ControlError, query_bool, read_json
from switchboard.sandbox.provider import Core, ProviderBase
from switchboard.sandbox.ratelimit import RateLimiter
from switchboard.sandbox.routes import RouteTable, limits_routes, route_table, settings_routes
from switchboard.sandbox.settings import RuleLimits
from switchboard.sandbox.traffic import (
    Generated,
    JobRegistry,
    TrafficJob,
    TrafficRequest,
    job_routes,
)
from switchboard.sandbox.webhooks import OrderedDelivery, RetryPolicy


class Account(Protocol):
    """A bot or business number: it can summarize itself for the control API."""

    def summary(self) -> dict[str, Any]: ...


C = TypeVar("C")


class MessagingState(Generic[C]):
    """Base of a messaging fake's state: the core, the provider's config `C` and the one
    limiter all its accounts share (the provider stops its accounts' webhook queues)."""

    def __init__(self, core: Core, config: C) -> None:
        self.core = core
        self.config = config
        self.limiter = RateLimiter(core.clock)

    async def remove(self, account: Any) -> None:
        """Forget an account: stop its webhook queue, drop it, start its limits afresh."""
        raise NotImplementedError


class Closable(Protocol):
    """Something holding background tasks (an emitter of follow-up webhooks)."""

    async def aclose(self) -> None: ...


class MessagingConfig(Protocol):
    """A messaging provider's settings: rate limits and the webhook retry policy."""

    @property
    def limits(self) -> RuleLimits: ...

    @property
    def webhook_retry(self) -> RetryPolicy: ...

    def to_json(self) -> dict[str, Any]: ...

    def update(self, data: dict[str, Any]) -> None: ...


A = TypeVar("A", bound=Account)
G = TypeVar("G", bound=Generated)


class MessagingProvider(ProviderBase, Generic[A, G]):
    """Base of a messaging fake; subclasses set the class names below and the hooks."""

    name: str
    prefix: str
    account_param: ClassVar[str]  # the account's name in queries and bodies: "bot", "number"
    accounts_key: ClassVar[str]  # the state snapshot's list of accounts: "bots", "numbers"
    generated_key: ClassVar[str]  # what `/generated?include=1` lists: "updates", "events"
    queue_name: ClassVar[str]  # what the webhook queue carries, for timeout messages

    config: MessagingConfig
    state: MessagingState[Any]

    def __init__(self, core: Core) -> None:
        self.core = core
        self.jobs = JobRegistry()
        self.generated: list[G] = []
        # What holds background tasks besides the webhook queues (closed first, the
        # queues last).
        self.workers: list[Closable] = []

    # -- what each provider supplies ----------------------------------------------------

    def find(self, ref: Any) -> A:
        """An account by any of its references (KeyError naming it if there is none)."""
        raise NotImplementedError

    def account_key(self, account: A) -> str:
        """The key of an account in records, fault rules and generated items."""
        raise NotImplementedError

    def accounts(self) -> MutableMapping[Any, A]:
        """The registered accounts (cleared on reset)."""
        raise NotImplementedError

    def queue_of(self, account: A) -> OrderedDelivery:
        """The account's webhook queue."""
        raise NotImplementedError

    # The usable traffic mix, or ValueError naming what is wrong.
    check_mix: Callable[[Mapping[str, float] | None], dict[str, float]]
    # The provider's traffic generator: one account, a request, a callback per item.
    produce: Callable[[A, TrafficRequest, Callable[[G], None]], Awaitable[list[G]]]

    # -- shared Python API --------------------------------------------------------------

    async def generate(
        self,
        account: Any,
        *,
        count: int | None = None,
        rate: float | None = None,
        duration: float | None = None,
        mix: Mapping[str, float] | None = None,
        seed: int = 0,
        users: int = 50,
    ) -> list[G]:
        """Simulate users of `account`; every item is also kept in `generated`."""
        request = TrafficRequest(count, duration, rate, mix, seed, users)
        return await self.produce(self.find(account), request, self.generated.append)

    def generated_items(self, account: Any = None, kind: str | None = None) -> list[G]:
        """Items the generator produced, optionally of one account and/or kind."""
        wanted = None if account is None else self.account_key(self.find(account))
        return [
            g
            for g in self.generated
            if (wanted is None or g.account == wanted) and (kind is None or g.kind == kind)
        ]

    async def wait_delivered(self, account: Any, timeout: float = 10.0) -> None:
        """Wait until the account's webhook queue is empty (TimeoutError otherwise)."""
        await self.queue_of(self.find(account)).wait_drained(timeout, self.queue_name)

    # -- provider contract --------------------------------------------------------------

    def control_routes(self) -> list[BaseRoute]:
        return route_table(self.own_control_routes() + self.shared_routes(), self.control_error)

    def normalize_account(self, account: str) -> str:
        """The key of the account `account` names, or `account` itself if none is known."""
        try:
            return self.account_key(self.find(account))
        except KeyError:
            return account

    def control_error(self, exc: Exception) -> ControlError | Response | None:
        """The answer to an exception of a control endpoint: an account lookup's KeyError
        is a 404 naming what is missing; None leaves it to the route guard."""
        if isinstance(exc, KeyError):
            return ControlError(str(exc.args[0]) if exc.args else "not found", 404)
        return None

    def own_control_routes(self) -> RouteTable:
        """The provider's own control endpoints (accounts, injection, inspection)."""
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        return {
            self.accounts_key: [a.summary() for a in self.accounts().values()],
            "generated": len(self.generated),
            "config": self.config.to_json(),
        }

    async def start(self) -> None:
        for account in self.accounts().values():
            self.queue_of(account).resume()

    async def reset(self) -> None:
        await self.aclose()
        self.accounts().clear()
        self.state.limiter.reset()
        self.generated.clear()
        self.jobs.clear()

    async def aclose(self) -> None:
        await self.jobs.aclose()
        for worker in self.workers:
            await worker.aclose()
        for account in self.accounts().values():
            await self.queue_of(account).aclose()

    # -- shared control routes ----------------------------------------------------------

    def apply_retry_policy(self) -> None:
        """Running webhook queues follow a changed `webhook_retry` at once."""
        for account in self.accounts().values():
            self.queue_of(account).policy = self.config.webhook_retry

    def shared_routes(self) -> RouteTable:
        """The accounts' list and removal (`/bots`, `/numbers`, ...), `/limits`, `/settings`,
        `/generated` and `/traffic` (start, list, read, stop)."""
        accounts = f"/{self.accounts_key}"

        async def list_accounts(request: Request) -> Response:
            return JSONResponse(
                {self.accounts_key: [a.summary() for a in self.accounts().values()]}
            )

        async def delete_account(request: Request) -> Response:
            await self.state.remove(self.find(request.path_params[self.account_param]))
            return JSONResponse({"deleted": True})

        async def generated(request: Request) -> Response:
            ref = request.query_params.get(self.account_param)
            items = self.generated_items(ref or None, request.query_params.get("kind"))
            by_kind: dict[str, int] = {}
            for item in items:
                by_kind[item.kind] = by_kind.get(item.kind, 0) + 1
            body: dict[str, Any] = {"count": len(items), "by_kind": by_kind}
            if query_bool(request, "include"):
                body[self.generated_key] = [item.payload for item in items]
            return JSONResponse(body)

        async def start_traffic(request: Request) -> Response:
            data = await read_json(request)
            ref = data.get(self.account_param) or data.get("bot")
            if not ref:
                raise ControlError(f"{self.account_param} is required")
            account = self.find(ref)
            traffic = TrafficRequest.from_json(data)
            self.check_mix(traffic.mix)
            job = self.jobs.start(
                {
                    "provider": self.name,
                    "account": self.account_key(account),
                    "count": traffic.count,
                    "duration": traffic.duration,
                    "rate": traffic.rate,
                },
                lambda job: self._run(job, account, traffic),
            )
            return JSONResponse(job.to_json(), status_code=202)

        return [
            (accounts, list_accounts, ["GET"]),
            (f"{accounts}/{{{self.account_param}}}", delete_account, ["DELETE"]),
            *limits_routes(lambda: self.config.limits, self.state.limiter),
            *settings_routes(self.config, self.state.limiter, self.apply_retry_policy),
            ("/generated", generated, ["GET"]),
            ("/traffic", start_traffic, ["POST"]),
            *job_routes(self.jobs),
        ]

    async def _run(self, job: TrafficJob, account: A, traffic: TrafficRequest) -> None:
        def count_one(item: G) -> None:
            self.generated.append(item)
            job.produced += 1
            job.by_kind[item.kind] = job.by_kind.get(item.kind, 0) + 1

        await self.produce(account, traffic, count_one)
