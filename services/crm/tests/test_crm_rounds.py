"""How the CRM projection groups a batch's statements (``crm_projector.rounds``): statements
on one row keep their order, the rest go together, one call per statement and round."""

from __future__ import annotations

from switchboard.crm.crm_projector import Write, rounds


def w(sql: str, n: int, *rows: str) -> Write:
    return Write(sql, (n,), tuple(rows))


def test_statements_on_distinct_rows_share_one_round_one_group_per_statement() -> None:
    got = rounds([w("A", 1, "x"), w("B", 2, "y"), w("A", 3, "z")])
    assert got == [[("A", [(1,), (3,)]), ("B", [(2,)])]]


def test_another_statement_on_the_same_row_waits_for_the_next_round() -> None:
    # insert lead x, change its stage, insert lead y: y joins the first round
    got = rounds([w("INS", 1, "x"), w("UPD", 2, "x"), w("INS", 3, "y")])
    assert got == [[("INS", [(1,), (3,)])], [("UPD", [(2,)])]]


def test_the_same_statement_on_one_row_stays_in_its_round_in_order() -> None:
    got = rounds([w("UPD", 1, "x"), w("UPD", 2, "x"), w("UPD", 3, "x")])
    assert got == [[("UPD", [(1,), (2,), (3,)])]]


def test_a_row_going_back_to_an_earlier_statement_goes_later_still() -> None:
    got = rounds([w("A", 1, "x"), w("B", 2, "x"), w("A", 3, "x"), w("A", 4, "y")])
    assert got == [[("A", [(1,), (4,)])], [("B", [(2,)])], [("A", [(3,)])]]


def test_a_statement_on_two_rows_follows_the_later_of_them() -> None:
    got = rounds([w("A", 1, "x"), w("B", 2, "x"), w("C", 3, "y"), w("C", 4, "x", "y")])
    assert got == [[("A", [(1,)]), ("C", [(3,)])], [("B", [(2,)])], [("C", [(4,)])]]


def test_nothing_to_run_is_no_round() -> None:
    assert rounds([]) == []
