"""Everything the fakes received and every webhook delivery they made, queryable by tests.

Provider apps annotate the in-flight request through a `RequestNote` stored in the ASGI
scope; `RecordingMiddleware` turns the note plus the HTTP status into a `RecordedRequest`.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.sandbox.clock import Clock, SystemClock

NOTE_KEY = "switchboard.sandbox.note"


@dataclass
class RequestNote:
    """What a provider learned about the request it is handling, filled in as it goes."""

    provider: str
    account: str | None = None
    method: str | None = None
    chat: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    ok: bool | None = None
    error_code: int | None = None
    description: str | None = None
    retry_after: int | None = None
    fault: str | None = None
    accepted_at: float | None = None

    def succeed(self) -> None:
        self.ok, self.error_code, self.description = True, None, None

    def fail(self, code: int, description: str, retry_after: int | None = None) -> None:
        self.ok, self.error_code, self.description = False, code, description
        self.retry_after = retry_after


def note_of(scope: Scope, provider: str = "unknown") -> RequestNote:
    """The note of this request, created on first use."""
    note = scope.get(NOTE_KEY)
    if not isinstance(note, RequestNote):
        note = RequestNote(provider=provider)
        scope[NOTE_KEY] = note
    return note


@dataclass(frozen=True)
class RecordedRequest:
    """One request a fake received and how it was answered."""

    seq: int
    provider: str
    account: str | None
    method: str | None
    chat: str | None
    http_method: str
    path: str
    status: int | None
    ok: bool
    error_code: int | None
    description: str | None
    retry_after: int | None
    fault: str | None
    params: dict[str, Any]
    at: float
    mono: float
    duration: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecordedDelivery:
    """One webhook POST the sandbox made to a receiver, successful or not."""

    seq: int
    provider: str
    account: str | None
    url: str
    ref: str | None
    attempt: int
    status: int | None
    ok: bool
    error: str | None
    at: float
    mono: float
    duration: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class Recorder:
    """Bounded in-memory log of requests and deliveries with simple filters."""

    def __init__(self, clock: Clock | None = None, limit: int = 100_000) -> None:
        self.clock = clock or SystemClock()
        self._seq = itertools.count(1)
        self._requests: deque[RecordedRequest] = deque(maxlen=limit)
        self._deliveries: deque[RecordedDelivery] = deque(maxlen=limit)

    def mark(self) -> int:
        """A sequence number to pass as `after` to see only what happens from now on."""
        last = [self._requests[-1].seq] if self._requests else []
        if self._deliveries:
            last.append(self._deliveries[-1].seq)
        return max(last, default=0)

    def add_request(
        self,
        note: RequestNote,
        *,
        http_method: str,
        path: str,
        status: int | None,
        started_mono: float,
        started_at: float,
    ) -> RecordedRequest:
        """Store a finished request; `note.accepted_at` (when set) is its monotonic time."""
        ok = note.ok if note.ok is not None else status is not None and status < 400
        mono = note.accepted_at if note.accepted_at is not None else started_mono
        record = RecordedRequest(
            seq=next(self._seq),
            provider=note.provider,
            account=note.account,
            method=note.method,
            chat=note.chat,
            http_method=http_method,
            path=path,
            status=status,
            ok=ok,
            error_code=note.error_code if not ok else None,
            description=note.description,
            retry_after=note.retry_after,
            fault=note.fault,
            params=dict(note.params),
            at=started_at + (mono - started_mono),
            mono=mono,
            duration=max(self.clock.monotonic() - started_mono, 0.0),
        )
        self._requests.append(record)
        return record

    def add_delivery(
        self,
        *,
        provider: str,
        account: str | None,
        url: str,
        ref: str | None,
        attempt: int,
        status: int | None,
        ok: bool,
        error: str | None,
        started_mono: float,
    ) -> RecordedDelivery:
        """Store one webhook attempt."""
        now = self.clock.monotonic()
        record = RecordedDelivery(
            seq=next(self._seq),
            provider=provider,
            account=account,
            url=url,
            ref=ref,
            attempt=attempt,
            status=status,
            ok=ok,
            error=error,
            at=self.clock.time() - (now - started_mono),
            mono=started_mono,
            duration=max(now - started_mono, 0.0),
        )
        self._deliveries.append(record)
        return record

    def requests(
        self,
        *,
        provider: str | None = None,
        account: str | int | None = None,
        method: str | None = None,
        chat: str | int | None = None,
        status: int | None = None,
        ok: bool | None = None,
        since: float | None = None,
        after: int | None = None,
        fault: str | None = None,
    ) -> list[RecordedRequest]:
        """Recorded requests matching every given filter, oldest first.

        `since` is a wall-clock time (inclusive); `after` a sequence number from `mark()`.
        Method names compare case-insensitively, as providers treat them.
        """
        want_method = method.lower() if method else None
        return [
            r
            for r in self._requests
            if (provider is None or r.provider == provider)
            and (account is None or r.account == str(account))
            and (want_method is None or (r.method or "").lower() == want_method)
            and (chat is None or r.chat == str(chat))
            and (status is None or r.status == status)
            and (ok is None or r.ok == ok)
            and (since is None or r.at >= since)
            and (after is None or r.seq > after)
            and (fault is None or r.fault == fault)
        ]

    def deliveries(
        self,
        *,
        provider: str | None = None,
        account: str | int | None = None,
        url: str | None = None,
        ok: bool | None = None,
        after: int | None = None,
    ) -> list[RecordedDelivery]:
        """Recorded webhook attempts matching every given filter, oldest first."""
        return [
            d
            for d in self._deliveries
            if (provider is None or d.provider == provider)
            and (account is None or d.account == str(account))
            and (url is None or d.url == url)
            and (ok is None or d.ok == ok)
            and (after is None or d.seq > after)
        ]

    def clear(self) -> None:
        self._requests.clear()
        self._deliveries.clear()


class RecordingMiddleware:
    """ASGI wrapper that records every HTTP request reaching a provider app."""

    def __init__(
        self,
        app: ASGIApp,
        recorder: Recorder,
        provider: str,
        classify: Callable[[Scope], tuple[str | None, str | None]],
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.provider = provider
        self.classify = classify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        note = note_of(scope, self.provider)
        note.provider = self.provider
        note.account, note.method = self.classify(scope)
        started_mono = self.recorder.clock.monotonic()
        started_at = self.recorder.clock.time()
        status: int | None = None

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if note.fault == "reset":
                status = None
            self.recorder.add_request(
                note,
                http_method=scope.get("method", "GET"),
                path=scope.get("path", ""),
                status=status,
                started_mono=started_mono,
                started_at=started_at,
            )
