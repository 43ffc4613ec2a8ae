"""Outgoing webhooks of the fakes: one ordered queue per account, retried with backoff.

The next payload is never sent before the previous one got a 2xx, which is how Telegram
delivers updates of one bot. Other providers reuse it with their own signing headers and
error wording.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from switchboard.sandbox.clock import Clock
from switchboard.sandbox.recorder import Recorder


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts of one payload: `initial * factor**(n-1)`, capped at `maximum`.

    `max_attempts` None retries until `max_age` seconds after the payload was queued.
    """

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0
    max_attempts: int | None = None
    max_age: float = 24 * 3600.0
    timeout: float = 10.0

    def delay(self, attempt: int) -> float:
        return float(min(self.initial * self.factor ** max(attempt - 1, 0), self.maximum))


@dataclass(frozen=True)
class DeliveryFailure:
    """Why one attempt failed: an HTTP status with its reason, or a transport error."""

    status: int | None = None
    reason: str | None = None
    error: BaseException | None = None


@dataclass
class WebhookTarget:
    """Where and how to deliver: URL, fixed headers and an optional body signer."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    sign: Callable[[bytes], Mapping[str, str]] | None = None
    # What the provider does with the answer to a delivered payload (Viber: the welcome
    # message a bot gives as its answer to conversation_started).
    answered: Callable[[dict[str, Any], httpx.Response], None] | None = None


@dataclass
class QueuedPayload:
    """A payload waiting for delivery, with its reference (e.g. update_id) and attempts."""

    payload: dict[str, Any]
    ref: str | None
    queued_at: float
    attempts: int = 0


Describe = Callable[[DeliveryFailure], str]


class Wakeup:
    """Wakes the tasks waiting on it; each waits until the next `set` or its timeout.

    The asyncio.Event behind it is made by the first waiter and dropped by `forget`, so a
    queue closed in one event loop works again in the next one (tests run a loop each).
    """

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def set(self) -> None:
        """Wake whoever waits now (with nobody waiting there is nothing to do)."""
        if self._event is not None:
            self._event.set()

    async def wait(self, timeout: float | None = None) -> None:
        """Sleep until the next `set`, or at most `timeout` seconds (None: no limit)."""
        if self._event is None:
            self._event = asyncio.Event()
        self._event.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()

    def forget(self) -> None:
        """Drop the event (bound to the loop that waited on it)."""
        self._event = None


def describe_plainly(failure: DeliveryFailure) -> str:
    """Default wording of a failed attempt."""
    if failure.status is not None:
        return f"{failure.status} {failure.reason or ''}".strip()
    return type(failure.error).__name__ if failure.error else "unknown error"


class HttpClientHolder:
    """One shared httpx client for all deliveries, created in the loop that first uses it."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def get(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(trust_env=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


@dataclass(eq=False)
class OrderedDelivery:
    """Queue of one account's payloads, delivered one at a time, in order, to its target
    (made by `Core.webhook_queue`)."""

    provider: str
    account: str
    recorder: Recorder
    clock: Clock
    http: HttpClientHolder
    policy: RetryPolicy
    describe: Describe = describe_plainly
    items: deque[QueuedPayload] = field(default_factory=deque, init=False)
    target: WebhookTarget | None = field(default=None, init=False)
    last_error_date: int | None = field(default=None, init=False)
    last_error_message: str | None = field(default=None, init=False)
    delivered: int = field(default=0, init=False)
    dropped: int = field(default=0, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    # Work arrived (the worker), the target changed (a back-off), the queue changed (long polls).
    _wake: Wakeup = field(default_factory=Wakeup, init=False, repr=False)
    _retarget: Wakeup = field(default_factory=Wakeup, init=False, repr=False)
    _changed: Wakeup = field(default_factory=Wakeup, init=False, repr=False)

    @property
    def pending(self) -> int:
        return len(self.items)

    async def wait_drained(self, timeout: float, what: str) -> None:
        """Wait until the queue is empty (TimeoutError naming ``what`` otherwise)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending:
            if loop.time() >= deadline:
                raise TimeoutError(f"{self.pending} {what} still pending")
            await asyncio.sleep(0.01)

    def put(self, payload: dict[str, Any], ref: str | None = None) -> None:
        """Queue a payload; delivery starts at once when a target is set."""
        self.items.append(QueuedPayload(payload=payload, ref=ref, queued_at=self.clock.time()))
        self._signal()

    def set_target(self, target: WebhookTarget | None) -> None:
        """Point deliveries somewhere else (None stops them, keeping the queue)."""
        if target is None or self.target is None or target.url != self.target.url:
            self.last_error_date = None
            self.last_error_message = None
        self.target = target
        self._retarget.set()
        self._signal()

    def resume(self) -> None:
        """Start delivering if there is work and a target (e.g. after the app restarted)."""
        self._signal()

    def clear(self) -> None:
        """Drop every queued payload."""
        self.items.clear()
        self._signal()

    def discard(self, predicate: Callable[[QueuedPayload], bool]) -> int:
        """Drop queued payloads matching `predicate` (getUpdates confirmations); return how many."""
        kept = [item for item in self.items if not predicate(item)]
        removed = len(self.items) - len(kept)
        self.items = deque(kept)
        self._signal()
        return removed

    async def wait_changed(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the queue to change (long polling)."""
        await self._changed.wait(timeout)

    async def aclose(self) -> None:
        """Stop the delivery worker; queued payloads stay queued."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for wakeup in (self._wake, self._retarget, self._changed):
            wakeup.forget()

    def _signal(self) -> None:
        self._changed.set()
        if self.target is None or not self.items:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(
                self._run(), name=f"deliver-{self.provider}-{self.account}"
            )

    async def _run(self) -> None:
        while True:
            if self.target is None or not self.items:
                await self._wake.wait()
                continue
            await self._attempt(self.items[0], self.target)

    async def _attempt(self, item: QueuedPayload, target: WebhookTarget) -> None:
        if self.clock.time() - item.queued_at > self.policy.max_age:
            self._drop(item)
            return
        item.attempts += 1
        body = json.dumps(item.payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"content-type": "application/json", **target.headers}
        if target.sign is not None:
            headers.update(target.sign(body))
        started = self.clock.monotonic()
        failure: DeliveryFailure | None = None
        status: int | None = None
        try:
            response = await self.http.get().post(
                target.url, content=body, headers=headers, timeout=self.policy.timeout
            )
            status = response.status_code
            if not 200 <= status < 300:
                failure = DeliveryFailure(status=status, reason=response.reason_phrase)
        except httpx.HTTPError as exc:
            failure = DeliveryFailure(error=exc)
        message = None if failure is None else self.describe(failure)
        self.recorder.add_delivery(
            provider=self.provider,
            account=self.account,
            url=target.url,
            ref=item.ref,
            attempt=item.attempts,
            status=status,
            ok=failure is None,
            error=message,
            started_mono=started,
        )
        if failure is None:
            if target.answered is not None:
                target.answered(item.payload, response)
            if self.items and self.items[0] is item:
                self.items.popleft()
                self.delivered += 1
                self._signal()
            return
        if self.target is not target:
            return  # the webhook changed meanwhile: this failure is no longer its news
        self.last_error_date = int(self.clock.time())
        self.last_error_message = message
        if self.policy.max_attempts is not None and item.attempts >= self.policy.max_attempts:
            self._drop(item)
            return
        await self._pause(self.policy.delay(item.attempts))

    def _drop(self, item: QueuedPayload) -> None:
        if self.items and self.items[0] is item:
            self.items.popleft()
            self.dropped += 1
            self._signal()

    async def _pause(self, seconds: float) -> None:
        """Back off, but wake early when the target changes (e.g. deleteWebhook)."""
        await self._retarget.wait(seconds)


class SpacedSteps:
    """Runs the follow-ups of one sent message (status webhooks, callbacks) at once, or
    `delay` seconds apart in a background task it owns, so closing cancels those waiting."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self, steps: Sequence[Callable[[], object]], delay: float) -> None:
        if not delay:
            for step in steps:
                step()
            return
        task = asyncio.create_task(self._spaced(steps, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _spaced(steps: Sequence[Callable[[], object]], delay: float) -> None:
        for step in steps:
            await asyncio.sleep(delay)
            step()

    async def aclose(self) -> None:
        """Cancel the steps still waiting for their delay."""
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
