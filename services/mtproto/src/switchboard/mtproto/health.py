"""Active health of the sessions an instance owns, for ``/health/integrations``: connection
state, last success and last failure with the reason, p95 latency of recent calls (sends and
probes), flood waits, and a periodic cheap probe (``get_me``) while the session is idle.

The probe obeys the same rule as the providers' (``runtime.integrations.probe_due``): at most
once per interval, and never while real traffic (an update, a send) proves the session
works; a FLOOD_WAIT on it is recorded and simply waits for the next interval.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from switchboard.mtproto.ports import MtprotoClient, MtprotoError
from switchboard.runtime.integrations import PROBE_OK, iso, p95, probe_due


@dataclass
class SessionHealth:
    """What one session's runner saw lately."""

    state: str = "connecting"
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    last_probe_at: datetime | None = None
    probe_ok: bool | None = None
    probe_error: str | None = None
    flood_waits: int = 0
    proxy: str | None = None  # the proxy in use (proxies.label), never its credentials
    account_status: str | None = None  # the last mtproto.account_status_changed
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=100))

    def succeeded(self, latency_s: float | None = None) -> None:
        self.last_success_at = datetime.now(UTC)
        if latency_s is not None:
            self.latencies.append(latency_s)

    def failed(self, reason: str) -> None:
        self.last_failure_at, self.last_error = datetime.now(UTC), reason

    def connected(self, value: bool) -> None:
        self.state = "connected" if value else "disconnected"
        if value:
            self.succeeded()

    def flood_wait(self, operation: str, seconds: int) -> None:
        self.flood_waits += 1
        self.failed(f"FLOOD_WAIT {seconds} s on {operation}")

    async def probe_if_due(
        self,
        client: MtprotoClient,
        every_s: float,
        now: datetime | None = None,
        key: str | None = None,
    ) -> bool:
        """Call ``get_me`` once after the first connect, then when the session has been
        quiet for ``every_s``; True if it did. ``key`` names it in the probe metric."""
        now = now or datetime.now(UTC)
        first = self.last_probe_at is None
        if not first and not probe_due(self.last_probe_at, self.last_success_at, now, every_s):
            return False
        self.last_probe_at = now
        started = time.perf_counter()
        try:
            me = await client.get_me()
        except MtprotoError as exc:
            self.probe_ok, self.probe_error = False, exc.reason
            self.failed(f"probe get_me: {exc.reason}")
            if key:
                PROBE_OK.labels(key).set(0)
            return True
        self.probe_ok, self.probe_error = me.id > 0, None  # who it is stays private
        self.succeeded(time.perf_counter() - started)
        if key:
            PROBE_OK.labels(key).set(1 if self.probe_ok else 0)
        return True

    @staticmethod
    def forget(key: str) -> None:
        """The session left this instance: its probe metric goes with it (the new owner
        reports it), so a failed probe here cannot keep an alert firing."""
        with contextlib.suppress(KeyError):
            PROBE_OK.remove(key)

    def body(self) -> dict[str, Any]:
        q = p95(self.latencies)
        return {
            "state": self.state,
            "healthy": self.state == "connected" and self.probe_ok is not False,
            "last_success_at": iso(self.last_success_at),
            "last_failure_at": iso(self.last_failure_at),
            "last_error": self.last_error,
            "p95_latency_ms": None if q is None else round(q * 1000, 1),
            "recent_calls": len(self.latencies),
            "flood_waits": self.flood_waits,
            "proxy": self.proxy,
            "account_status": self.account_status,
            "probe": {
                "ok": self.probe_ok,
                "at": iso(self.last_probe_at),
                "error": self.probe_error,
            },
        }


def report(sessions: Iterable[tuple[str, SessionHealth]]) -> dict[str, dict[str, Any]]:
    """``/health/integrations`` entries, keyed ``mtproto/<session id>``."""
    return {f"mtproto/{sid}": health.body() for sid, health in sorted(sessions)}
