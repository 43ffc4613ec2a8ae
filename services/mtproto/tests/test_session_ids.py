"""Session ids per workspace, as pure decisions: the id a caller names is its own session."""

from __future__ import annotations

import re

from switchboard.events.catalog.mtproto import SESSION_ID
from switchboard.mtproto.session_ids import MAX_LENGTH, alias, decide, external


def test_a_free_or_own_id_is_itself_and_another_workspaces_is_the_callers_alias() -> None:
    assert decide("b", "sess-1", None, None) == "sess-1"  # free
    assert decide("b", "sess-1", None, "b") == "sess-1"  # B's own
    assert decide("b", "sess-1", None, "a") == alias("b", "sess-1")  # A's: B's alias
    # once B holds the alias, B keeps it, even after A's id is gone
    assert decide("b", "sess-1", "b", None) == alias("b", "sess-1")
    assert alias("a", "sess-1") != alias("b", "sess-1")


def test_an_alias_is_a_valid_session_id_and_maps_back_to_the_callers_id() -> None:
    for sid in ("s", "sess-1", "x" * MAX_LENGTH):
        made = alias("other", sid)
        assert re.match(SESSION_ID, made)
        assert len(made) <= MAX_LENGTH
    assert external("other", alias("other", "sess-1")) == "sess-1"
    assert external("demo", alias("other", "sess-1")) == alias("other", "sess-1")
    assert external("other", "sess-1") == "sess-1"
