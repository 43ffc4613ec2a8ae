"""The failure policy as a table: whose fault each failure is and what follows from it."""

from __future__ import annotations

import socket

import asyncpg
import nats.errors
import nats.js.errors
import pytest

from switchboard.events import DecodeError
from switchboard.runtime.failures import (
    DeadLetter,
    Failure,
    InfrastructureError,
    PermanentError,
    PoisonBudget,
    Retry,
    RetryPolicy,
    classify,
    decide,
)


def _wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("handler gave up") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (nats.errors.TimeoutError(), Failure.INFRASTRUCTURE),
        (nats.errors.NoRespondersError(), Failure.INFRASTRUCTURE),
        (nats.errors.ConnectionClosedError(), Failure.INFRASTRUCTURE),
        (nats.errors.ConnectionReconnectingError(), Failure.INFRASTRUCTURE),
        (nats.js.errors.ServiceUnavailableError(code=503), Failure.INFRASTRUCTURE),
        (nats.js.errors.NoStreamResponseError(), Failure.INFRASTRUCTURE),
        (nats.js.errors.BucketNotFoundError(), Failure.INFRASTRUCTURE),
        (nats.js.errors.NotFoundError(code=404, err_code=10059), Failure.INFRASTRUCTURE),
        (nats.js.errors.APIError(code=409, err_code=10158), Failure.INFRASTRUCTURE),
        (nats.js.errors.KeyWrongLastSequenceError(), Failure.INFRASTRUCTURE),
        (asyncpg.CannotConnectNowError("starting up"), Failure.INFRASTRUCTURE),
        (asyncpg.AdminShutdownError("terminating"), Failure.INFRASTRUCTURE),
        (asyncpg.ConnectionDoesNotExistError("gone"), Failure.INFRASTRUCTURE),
        (asyncpg.TooManyConnectionsError("too many"), Failure.INFRASTRUCTURE),
        (asyncpg.SerializationError("retry"), Failure.INFRASTRUCTURE),
        (asyncpg.InterfaceError("connection is closed"), Failure.INFRASTRUCTURE),
        (ConnectionRefusedError(111, "refused"), Failure.INFRASTRUCTURE),
        (socket.gaierror(-2, "Name or service not known"), Failure.INFRASTRUCTURE),
        (TimeoutError(), Failure.INFRASTRUCTURE),
        (InfrastructureError("lost the lock"), Failure.INFRASTRUCTURE),
        (_wrapped(ConnectionResetError()), Failure.INFRASTRUCTURE),
        (nats.js.errors.KeyNotFoundError(), Failure.CONTENT),
        (nats.js.errors.BadRequestError(code=400, err_code=10054), Failure.CONTENT),
        (nats.errors.MaxPayloadError(), Failure.CONTENT),
        (asyncpg.UniqueViolationError("duplicate"), Failure.CONTENT),
        (asyncpg.exceptions.DataError("invalid input"), Failure.CONTENT),
        (KeyError("contact"), Failure.CONTENT),
        (ValueError("bad amount"), Failure.CONTENT),
        (_wrapped(KeyError("x")), Failure.CONTENT),
        (PermanentError("not a send command"), Failure.MALFORMED),
        (DecodeError("not JSON"), Failure.MALFORMED),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_classify(exc: BaseException, kind: Failure) -> None:
    assert classify(exc) is kind


POLICY = RetryPolicy(max_attempts=3, backoff_s=(0.5, 2.0), infra_base_s=0.5, infra_cap_s=4.0)


@pytest.mark.parametrize(
    ("exc", "failures", "deliveries", "outcome"),
    [
        # content: counted, backoff per attempt, the DLQ at the third
        (KeyError("x"), 0, 1, Retry(0.5, counted=True, reason="KeyError: 'x'")),
        (KeyError("x"), 1, 2, Retry(2.0, counted=True, reason="KeyError: 'x'")),
        (KeyError("x"), 2, 3, DeadLetter("KeyError: 'x'", 3)),
        # content failures count, not deliveries: after a long outage it still has them all
        (KeyError("x"), 0, 500, Retry(0.5, counted=True, reason="KeyError: 'x'")),
        # malformed: the DLQ at once
        (PermanentError("no"), 0, 1, DeadLetter("no", 1)),
        # infrastructure: never counted, never the DLQ, backoff doubling up to the cap
        (
            nats.errors.NoRespondersError(),
            2,
            1,
            Retry(0.5, False, "NoRespondersError: nats: no responders available for request"),
        ),
        (
            nats.errors.NoRespondersError(),
            2,
            3,
            Retry(2.0, False, "NoRespondersError: nats: no responders available for request"),
        ),
        (
            nats.errors.NoRespondersError(),
            2,
            10_000,
            Retry(4.0, False, "NoRespondersError: nats: no responders available for request"),
        ),
    ],
)
def test_decide(exc: BaseException, failures: int, deliveries: int, outcome: object) -> None:
    assert decide(exc, failures=failures, deliveries=deliveries, policy=POLICY) == outcome


def test_an_outage_of_any_length_never_dead_letters() -> None:
    outage = asyncpg.CannotConnectNowError("the database system is starting up")
    for deliveries in range(1, 5000):
        outcome = decide(
            outage, failures=POLICY.max_attempts - 1, deliveries=deliveries, policy=POLICY
        )
        assert isinstance(outcome, Retry)
        assert not outcome.counted
        assert outcome.delay_s <= POLICY.infra_cap_s


def test_poison_budget_counts_per_message_and_is_bounded() -> None:
    budget = PoisonBudget(capacity=2)
    budget.record(1, 1, "a")
    budget.record(2, 3, "b")
    assert budget.failures(1) == 1
    assert budget.spent(2, POLICY)
    assert budget.last_reason(2) == "b"
    budget.record(3, 1, "c")  # the oldest entry makes room
    assert budget.failures(1) == 0
    budget.forget(2)
    assert not budget.spent(2, POLICY)
