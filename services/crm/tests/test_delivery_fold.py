"""The delivery projection folds a batch's rows per key into what applying them one by one
leaves (ties included); the integration test replays both ways against Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from switchboard.crm.delivery_projector import RANK, fold_deliveries, fold_receipts

T = datetime(2026, 12, 1, tzinfo=UTC)


def receipt(status: str, s: int, reason: str | None = None, who: str = "r1") -> tuple[object, ...]:
    return ("ws", "telegram", "acct", "p1", who, status, RANK[status], reason, T + timedelta(s))


def delivery(status: str, s: int, pid: str | None = None, msg: str = "m1") -> tuple[object, ...]:
    return ("ws", msg, "telegram", "acct", "r1", status, RANK[status], None, pid, T + timedelta(s))


def test_receipts_keep_the_first_of_the_highest_rank_and_time_per_key() -> None:
    rows = [
        receipt("read", 5, "first"),
        receipt("delivered", 9),  # lower rank, later: loses
        receipt("read", 5, "second"),  # a tie: the first stays
        receipt("sent", 1, who="r2"),
    ]
    assert fold_receipts(rows) == [receipt("read", 5, "first"), receipt("sent", 1, who="r2")]


def test_a_later_receipt_of_the_same_rank_wins() -> None:
    assert fold_receipts([receipt("read", 5), receipt("read", 6)]) == [receipt("read", 6)]


def test_deliveries_take_the_highest_rank_the_later_on_a_tie_and_the_first_provider_id() -> None:
    rows = [
        delivery("queued", 0),
        delivery("sent", 2, pid="p1"),
        delivery("retrying", 3),  # lower than sent: only a missing provider id could come
        delivery("sent", 4, pid="p2"),  # a tie: its status and time, not its provider id
        delivery("queued", 0, msg="m2"),
    ]
    folded = fold_deliveries(rows)
    assert folded == [
        ("ws", "m1", "telegram", "acct", "r1", "sent", 2, None, "p1", T + timedelta(4)),
        delivery("queued", 0, msg="m2"),
    ]
