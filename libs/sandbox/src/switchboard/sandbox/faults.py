"""Fault injection shared by every fake: latency, 5xx rate, hangs, connection resets, outages.

Rules are scoped to a provider and/or an account (bot token id, phone number id, ...); the
most specific matching rule applies. Random faults draw from a per-rule seeded RNG, so a
given request sequence always meets the same faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from http import HTTPStatus
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from switchboard.sandbox.clock import Clock, SystemClock
from switchboard.sandbox.recorder import note_of
from switchboard.sandbox.settings import check_fractions, check_not_negative

ErrorResponder = Callable[[int, str], Response]


@dataclass(frozen=True)
class FaultSpec:
    """What to do to matching requests; every field defaults to "no fault".

    - `latency`: seconds added before the request is handled (or failed).
    - `error_rate` / `error_status`: probability of answering `error_status` (5xx).
    - `hang_rate` / `hang_seconds`: probability of holding the request for `hang_seconds`
      (past the client's timeout) before answering 504.
    - `reset_rate`: probability of dropping the connection without a complete response.
    - `outage_until`: wall time until which every request gets 503.
    - `methods`: restrict the rule to these provider methods (case-insensitive).
    """

    latency: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    reset_rate: float = 0.0
    outage_until: float | None = None
    methods: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_fractions(self, "error_rate", "hang_rate", "reset_rate")
        check_not_negative(self, "latency", "hang_seconds")
        if not 500 <= self.error_status <= 599:
            raise ValueError("error_status must be a 5xx status")


@dataclass
class FaultRule:
    """A spec bound to a scope, with its own random stream and hit counter."""

    provider: str | None
    account: str | None
    spec: FaultSpec
    rng: random.Random = field(repr=False)
    hits: int = 0

    @property
    def id(self) -> str:
        return f"{self.provider or '*'}/{self.account or '*'}"

    def matches(self, provider: str, account: str | None, method: str | None) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        if self.account is not None and self.account != account:
            return False
        methods = self.spec.methods
        return methods is None or (method or "").lower() in {m.lower() for m in methods}

    def specificity(self) -> int:
        return (2 if self.account is not None else 0) + (1 if self.provider is not None else 0)

    def to_json(self) -> dict[str, Any]:
        spec = asdict(self.spec)
        spec["methods"] = list(self.spec.methods) if self.spec.methods else None
        return {
            "id": self.id,
            "provider": self.provider,
            "account": self.account,
            "hits": self.hits,
            **spec,
        }


@dataclass(frozen=True)
class FaultAction:
    """The fault chosen for one request: `kind` is none, outage, reset, hang or error."""

    kind: str = "none"
    latency: float = 0.0
    status: int = 0
    hang_seconds: float = 0.0


class FaultInjector:
    """The set of active fault rules, one per (provider, account) scope."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._rules: dict[tuple[str | None, str | None], FaultRule] = {}

    def set(
        self, spec: FaultSpec, *, provider: str | None = None, account: str | None = None
    ) -> FaultRule:
        """Install `spec` for the scope, replacing any rule already there."""
        rule = FaultRule(
            provider=provider, account=account, spec=spec, rng=random.Random(spec.seed)
        )
        self._rules[(provider, account)] = rule
        return rule

    def set_from_json(self, data: Mapping[str, Any]) -> FaultRule:
        """Install a rule from the control API's JSON (`outage_seconds` is relative)."""
        fields = {k: v for k, v in data.items() if k in FaultSpec.__dataclass_fields__}
        if data.get("outage_seconds") is not None:
            fields["outage_until"] = self.clock.time() + float(data["outage_seconds"])
        if fields.get("methods") is not None:
            fields["methods"] = tuple(str(m) for m in fields["methods"])
        spec = replace(FaultSpec(), **fields)
        account = data.get("account")
        return self.set(
            spec, provider=data.get("provider"), account=None if account is None else str(account)
        )

    def clear(self, *, provider: str | None = None, account: str | None = None) -> bool:
        """Remove the rule of exactly this scope; True when there was one."""
        return self._rules.pop((provider, account), None) is not None

    def clear_all(self) -> None:
        self._rules.clear()

    def remove(self, rule_id: str) -> bool:
        """Remove a rule by the id shown in `rules()`."""
        for key, rule in list(self._rules.items()):
            if rule.id == rule_id:
                del self._rules[key]
                return True
        return False

    def rules(self) -> list[FaultRule]:
        return list(self._rules.values())

    def match(self, provider: str, account: str | None, method: str | None) -> FaultRule | None:
        """The most specific rule for this request, if any."""
        found = [r for r in self._rules.values() if r.matches(provider, account, method)]
        return max(found, key=FaultRule.specificity, default=None)

    def decide(self, provider: str, account: str | None, method: str | None) -> FaultAction:
        """Draw the fault for one request (consumes the rule's random stream)."""
        rule = self.match(provider, account, method)
        if rule is None:
            return FaultAction()
        spec = rule.spec
        action = FaultAction(latency=spec.latency)
        if spec.outage_until is not None and self.clock.time() < spec.outage_until:
            action = replace(action, kind="outage", status=503)
        elif spec.reset_rate and rule.rng.random() < spec.reset_rate:
            action = replace(action, kind="reset")
        elif spec.hang_rate and rule.rng.random() < spec.hang_rate:
            action = replace(action, kind="hang", status=504, hang_seconds=spec.hang_seconds)
        elif spec.error_rate and rule.rng.random() < spec.error_rate:
            action = replace(action, kind="error", status=spec.error_status)
        if action.kind != "none" or action.latency:
            rule.hits += 1
        return action


def reason(status: int) -> str:
    """The standard reason phrase of an HTTP status."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class FaultMiddleware:
    """ASGI wrapper applying the injector's decision before the provider sees the request.

    It runs inside `RecordingMiddleware`, which has put the request's provider, account and
    method in its note: a request is classified once, and the rules match what is recorded.
    """

    def __init__(
        self, app: ASGIApp, injector: FaultInjector, error_response: ErrorResponder
    ) -> None:
        self.app = app
        self.injector = injector
        self.error_response = error_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        note = note_of(scope)
        action = self.injector.decide(note.provider, note.account, note.method)
        if action.latency:
            note.fault = "latency"
            await asyncio.sleep(action.latency)
        if action.kind == "none":
            await self.app(scope, receive, send)
            return
        note.fault = action.kind
        if action.kind == "reset":
            await _reset(send)
            return
        if action.kind == "hang" and not await _hold(receive, action.hang_seconds):
            return
        description = reason(action.status)
        note.fail(action.status, description)
        await self.error_response(action.status, description)(scope, receive, send)


async def _reset(send: Send) -> None:
    """Announce a body and never send it: the server closes the connection mid-response,
    so the client sees a transport error rather than an HTTP status."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
        }
    )


async def _hold(receive: Receive, seconds: float) -> bool:
    """Wait `seconds` or until the client hangs up; True when the client is still there."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait({watcher}, timeout=seconds)
        return not done
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
