"""The WHERE clause of a list: the workspace always, then only the optional filters the
caller gave, each with the next parameter number."""

from __future__ import annotations

from datetime import UTC, datetime

from switchboard.crm.campaigns import Segment, _where
from switchboard.crm.queries import Filters, InboxQuery, LeadsQuery
from switchboard.events.catalog.common import Channel

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


def test_a_campaign_segment_numbers_its_lead_conditions_after_the_others() -> None:
    segment = Segment(channel=Channel.TELEGRAM, tags=["vip", "a", "vip"], assignee="ann")
    where, args = _where("ws", segment)
    assert where == (
        "c.workspace_id = $1 AND c.channel = $2 AND c.chat_type = 'private' AND NOT p.erased"
        " AND p.merged_into IS NULL AND p.tags @> $3::text[] AND EXISTS (SELECT 1 FROM leads l"
        " WHERE l.workspace_id = $1 AND l.contact_id = p.id AND l.assignee = $4)"
    )
    assert args == ["ws", "telegram", ["a", "vip"], "ann"]


def test_a_segment_of_a_whole_channel_has_only_its_fixed_conditions() -> None:
    where, args = _where("ws", Segment(channel=Channel.VIBER))
    assert where == (
        "c.workspace_id = $1 AND c.channel = $2 AND c.chat_type = 'private' AND NOT p.erased"
        " AND p.merged_into IS NULL"
    )
    assert args == ["ws", "viber"]


def test_a_list_request_adds_the_clause_declared_with_each_filter_it_gives() -> None:
    f = LeadsQuery(stage="won", contact_id="ct_1", limit=10).filtered("ws")
    assert f.sql() == "workspace_id = $1 AND stage = $2 AND contact_id = $3"
    assert f.args == ["ws", "won", "ct_1"]
    inbox = InboxQuery(updated_since=SINCE).filtered("ws", "c.workspace_id")
    assert inbox.sql() == "c.workspace_id = $1 AND c.last_message_at >= $2"
    assert inbox.args == ["ws", SINCE]
