"""Active health of the provider accounts a service calls: a periodic cheap probe of each
(``provider_checks``: getMe, the phone number's info, get_account_info, a SendPulse token, a
CAPI test event) and what ``/health/integrations`` reports from it.

The probe never costs an account's sending budget: it takes no rate-limit slot (none of
those calls is a send), runs at most once per ``every_s`` per account, and is skipped while
the account's real calls prove it healthy (a success within ``every_s``). The route handler
is self-contained (:func:`integrations_endpoint`) so it can be mounted on any app or port.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import Gauge
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from switchboard.runtime.accounts import Account
from switchboard.runtime.logging import get_logger
from switchboard.runtime.periodic import every
from switchboard.runtime.provider_checks import Endpoints, check_account, provider_of

log = get_logger(__name__)

Report = Callable[[], dict[str, dict[str, Any]]]
PROBE_OK = Gauge(
    "switchboard_integration_probe_ok",
    "1 when the last probe of a provider account or user session succeeded, 0 when it failed "
    "(a revoked or expired token, a number that left the account, ...)",
    ["integration"],
)


def p95(samples: Iterable[float]) -> float | None:
    """The 95th percentile (nearest rank); None without samples."""
    ordered = sorted(samples)
    if not ordered:
        return None
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@dataclass
class ProbeRecord:
    """What the probes of one account found so far."""

    last_at: datetime | None = None
    ok: bool | None = None
    problems: list[dict[str, str]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    skipped: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=50))

    def body(self) -> dict[str, Any]:
        q = p95(self.latencies)
        return {
            "ok": self.ok,
            "at": iso(self.last_at),
            "problems": self.problems,
            "facts": self.facts,
            "notes": self.notes,
            "last_success_at": iso(self.last_success_at),
            "last_failure_at": iso(self.last_failure_at),
            "last_error": self.last_error,
            "p95_latency_ms": None if q is None else round(q * 1000, 1),
            "probes_skipped": self.skipped,  # recently probed, or proven by real calls
        }


RETRY_FAILED_S = 60.0


def probe_due(
    last_probe: datetime | None,
    last_real_success: datetime | None,
    now: datetime,
    every_s: float,
    failed: bool = False,
) -> bool:
    """Probe an account only when neither a probe nor a real call succeeded within
    ``every_s``: its own traffic is the cheapest proof of health. After a failed probe the
    next comes sooner (within a minute), so a fixed account stops looking broken."""
    window = timedelta(seconds=every_s)
    if last_real_success is not None and now - last_real_success < window:
        return False
    if failed:
        window = min(window, timedelta(seconds=RETRY_FAILED_S))
    return last_probe is None or now - last_probe >= window


class Prober:
    """Probes the accounts of ``providers`` (as ``provider_checks.provider_of`` names them)
    that ``accounts`` lists, keyed ``<provider>/<account id>`` like the outbound breakers."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoints: Endpoints,
        accounts: Callable[[], list[Account]],
        providers: Collection[str],
        every_s: float = 300.0,
        last_real_success: Callable[[str], datetime | None] = lambda _: None,
        webhook_url: Callable[[Account], str | None] = lambda _: None,
    ) -> None:
        self.http, self.endpoints, self.accounts = http, endpoints, accounts
        self.providers, self.every_s = set(providers), every_s
        self.last_real_success = last_real_success
        self.webhook_url = webhook_url  # where the provider should deliver, if we registered
        self.records: dict[str, ProbeRecord] = {}

    def watched(self) -> dict[str, Account]:
        """The accounts probed, by key."""
        found = {}
        for account in self.accounts():
            provider = provider_of(account)
            if provider in self.providers:
                found[f"{provider}/{account.id}"] = account
        return found

    async def probe_due_accounts(self, now: datetime | None = None) -> int:
        """Probe every account that is due (one at a time: a probe is never urgent);
        returns how many were probed."""
        now = now or datetime.now(UTC)
        watched = self.watched()
        for key in list(self.records):
            if key not in watched:
                del self.records[key]  # removed accounts leave the report and the metric
                with contextlib.suppress(KeyError):
                    PROBE_OK.remove(key)
        probed = 0
        for key, account in watched.items():
            record = self.records.setdefault(key, ProbeRecord())
            last_real = self.last_real_success(key)
            if not probe_due(record.last_at, last_real, now, self.every_s, record.ok is False):
                if record.last_at is not None:
                    record.skipped += 1
                continue
            await self.probe(key, account, record)
            probed += 1
        return probed

    async def probe(self, key: str, account: Account, record: ProbeRecord) -> None:
        started = time.perf_counter()
        try:
            report = await check_account(
                self.http, self.endpoints, account, self.webhook_url(account)
            )
        except Exception as exc:  # a bug in a check must not stop the prober
            log.exception("probe failed", integration=key)
            record.last_at = datetime.now(UTC)
            record.ok, record.last_error = False, f"probe error: {type(exc).__name__}"
            record.last_failure_at = record.last_at
            PROBE_OK.labels(key).set(0)
            return
        record.latencies.append(time.perf_counter() - started)
        record.last_at = datetime.now(UTC)
        record.ok, record.problems = report.ok, report.problems
        record.facts, record.notes = report.facts, report.notes
        PROBE_OK.labels(key).set(1 if report.ok else 0)
        if report.ok:
            record.last_success_at = record.last_at
        else:
            record.last_failure_at = record.last_at
            record.last_error = "; ".join(f"{p['path']}: {p['message']}" for p in report.problems)

    async def run(self, stop: asyncio.Event, tick_s: float = 5.0) -> None:
        """Probe what is due every ``tick_s`` seconds until ``stop``."""
        await every(tick_s, stop, self.probe_due_accounts, "prober round failed")

    def report(self) -> dict[str, dict[str, Any]]:
        return {key: record.body() for key, record in sorted(self.records.items())}


def healthy(integrations: dict[str, dict[str, Any]]) -> bool:
    """Every integration's breaker is closed (where it has one) and its last probe did not
    fail (not probed yet counts as healthy: there is nothing against it); an entry that
    judges itself (``healthy``, e.g. a user session) is taken at its word."""
    for entry in integrations.values():
        if "healthy" in entry:
            if not entry["healthy"]:
                return False
            continue
        if entry.get("state", "closed") != "closed":
            return False
        probe = entry.get("probe") or {}
        if probe.get("ok") is False:
            return False
    return True


def integrations_endpoint(report: Report) -> Callable[[Request], Awaitable[Response]]:
    """A ``GET /health/integrations`` handler over ``report`` (integration key -> entry);
    always 200, with ``healthy`` saying whether anything is wrong (a probe of a dashboard,
    not of the process: ``/readyz`` is that)."""

    async def handler(_: Request) -> Response:
        entries = report()
        return JSONResponse({"healthy": healthy(entries), "integrations": entries})

    return handler


def add_integrations_route(app: FastAPI, report: Report, summary: str) -> None:
    """Serve ``GET /health/integrations`` over ``report`` on ``app``, documented with
    ``summary`` (what one entry is, for this service)."""
    app.add_api_route(
        "/health/integrations",
        integrations_endpoint(report),
        methods=["GET"],
        tags=["health"],
        summary=summary,
    )
