"""The WHERE clause of a list: the workspace always, then only the optional filters the
caller gave, each with the next parameter number."""

from __future__ import annotations

from datetime import UTC, datetime

from switchboard.crm.queries import Filters

SINCE = datetime(2026, 3, 1, tzinfo=UTC)


def test_only_given_filters_are_added_in_order_with_numbered_parameters() -> None:
    f = Filters("ws", "c.workspace_id")
    f.add_given({"c.channel = {}": "telegram", "c.account = {}": None, "c.at >= {}": SINCE})
    assert f.sql() == "c.workspace_id = $1 AND c.channel = $2 AND c.at >= $3"
    assert f.args == ["ws", "telegram", SINCE]


def test_nothing_given_leaves_the_workspace_alone() -> None:
    f = Filters("ws")
    f.add_given({"stage = {}": None, "assignee = {}": ""})
    assert (f.sql(), f.args) == ("workspace_id = $1", ["ws"])
