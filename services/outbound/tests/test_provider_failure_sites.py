"""The three provider call sites (chat sends, SendPulse commands, CAPI conversions) answer the
same provider failure the same way: one policy (``runtime.delivery.provider_failures``).

The sites' own collaborators are replaced by recorders: what is compared is what each site
asked of the limiter (pause what, with which key, how long) and when it redelivers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from switchboard.outbound.attempts import Attempt
from switchboard.outbound.conversions import ConversionSender, _Item
from switchboard.outbound.dispatch import ProviderCommands
from switchboard.outbound.interactions import Interactions
from switchboard.outbound.limits import LimitKey, account_key, send_limits
from switchboard.outbound.providers.base import Failure, ProviderError
from switchboard.outbound.sender import Sender, SendPolicy
from switchboard.runtime.accounts import Account
from switchboard.runtime.breaker import Breakers


@dataclass
class Seen:
    """What one site did with one failure."""

    pauses: list[tuple[str, float, LimitKey | None]] = field(default_factory=list)
    redeliver_after: list[float] = field(default_factory=list)
    failed: list[tuple[str, bool]] = field(default_factory=list)
    records: list[Attempt] = field(default_factory=list)

    async def pause(self, name: str, seconds: float, key: LimitKey | None = None) -> float:
        self.pauses.append((name, seconds, key))
        return seconds

    async def put(self, record: Attempt) -> None:
        self.records.append(record)


class Msg:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen
        self.metadata = SimpleNamespace(num_delivered=1)

    async def nak(self, delay: float | None = None) -> None:
        self.seen.redeliver_after.append(delay or 0.0)

    async def ack(self) -> None:
        return None


class Job:
    """The send path's outcome object: again and fail, recorded."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen
        self.msg = Msg(seen)

    async def again(self, record: Attempt, reason: str, code: str, delay: float) -> None:
        self.seen.records.append(record)
        self.seen.redeliver_after.append(delay)

    async def fail(self, record: Attempt, reason: str, code: str, *, permanent: bool) -> None:
        self.seen.failed.append((reason, permanent))


POLICY = SendPolicy(max_attempts=3, backoff_base=1.0, backoff_max=60.0)


def _record(attempts: int = 1) -> Attempt:
    return Attempt(
        message_id="m1", workspace_id="default", channel="x", account="a", recipient="r",
        attempts=attempts,
    )  # fmt: skip


def _parts(seen: Seen) -> dict[str, Any]:
    """What every site is made of, the limiter and the records being ``seen``; the bus and
    the account cache are never reached on these paths."""
    return {
        "bus": None, "accounts": None, "attempts": seen, "limiter": seen,
        "breakers": Breakers(), "policy": POLICY,
    }  # fmt: skip


async def _send(err: ProviderError) -> Seen:
    seen = Seen()
    sender = Sender(**_parts(seen), schedulers=None, clients={})
    limits = send_limits(Account(channel="telegram", id="bot1"), "42")
    await sender._on_error(Job(seen), _record(), err, limits)  # type: ignore[arg-type]
    return seen


async def _dispatch(err: ProviderError) -> Seen:
    seen = Seen()
    commands = ProviderCommands(**_parts(seen), client=None)
    key = account_key(Account(channel="generic", id="sp1"), "sendpulse")
    cmd = SimpleNamespace(name="outbound.send_email", account="sp1", message_id="e1")
    await commands._on_error(cmd, None, Msg(seen), _record(), err, "sendpulse.sp1", key)  # type: ignore[arg-type]
    return seen


async def _convert(err: ProviderError) -> Seen:
    seen = Seen()
    conversions = ConversionSender(**_parts(seen), http=None)
    item = _Item(cmd=None, env=None, msg=Msg(seen), record=_record())  # type: ignore[arg-type]
    await conversions._on_error(err, Account(channel="generic", id="px1"), None, [item], [{}])
    return seen


SITES = {"send": _send, "dispatch": _dispatch, "conversion": _convert}


@pytest.mark.parametrize("retry_after", [None, 7.0])
async def test_a_rate_limit_waits_the_same_everywhere(retry_after: float | None) -> None:
    err = ProviderError(Failure.RATE_LIMITED, "429", "slow down", retry_after=retry_after)
    seen = {name: await site(err) for name, site in SITES.items()}
    waits = {name: s.redeliver_after for name, s in seen.items()}
    paused = {name: [p[1] for p in s.pauses] for name, s in seen.items()}
    expected = [retry_after or 1.0]
    assert waits == {name: expected for name in SITES}
    assert paused == {name: expected for name in SITES}
    # the call was the first attempt, and a rate-limited call is not counted
    counted = {name: [r.attempts for r in s.records] for name, s in seen.items()}
    assert counted == {name: [0] for name in SITES}


async def test_every_rate_limit_pause_names_its_limit_key() -> None:
    err = ProviderError(Failure.RATE_LIMITED, "429", "slow down", retry_after=3.0)
    for name, site in SITES.items():
        seen = await site(err)
        assert [key is not None for _, _, key in seen.pauses] == [True], name


class Announced:
    """An interaction's outcome: the failures it announced."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def failed(self, reason: str, code: str) -> None:
        self.seen.failed.append((reason, False))


@pytest.mark.parametrize(
    ("fault", "deliveries", "nak", "failed"),
    [
        (Failure.RATE_LIMITED, 1, [1.0], []),  # the policy's wait, not a jittered backoff
        (Failure.RATE_LIMITED, 10, [1.0], []),  # a rate limit never gives up
        (Failure.RETRYABLE, 10, [], ["gave up after 10 attempts: down"]),
        (Failure.PERMANENT, 1, [], ["down"]),
    ],
)
async def test_an_interaction_follows_the_same_policy(
    fault: Failure, deliveries: int, nak: list[float], failed: list[str]
) -> None:
    seen = Seen()
    interactions = Interactions(None, None, seen, Breakers(), None)  # type: ignore[arg-type]
    err = ProviderError(fault, "429" if fault is Failure.RATE_LIMITED else "500", "down")
    await interactions._on_error(Msg(seen), Announced(seen), err, deliveries)  # type: ignore[arg-type]
    assert seen.redeliver_after == nak
    assert [reason for reason, _ in seen.failed] == failed
