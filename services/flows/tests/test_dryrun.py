"""Dry runs: a scripted transcript played against a flow, each input with its decision and
nothing sent; a transcript entry says exactly one thing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from switchboard.flows.demo import DEMO_FLOW
from switchboard.flows.document import validate
from switchboard.flows.dryrun import DryRun, play


def test_the_demo_played_from_start_to_end() -> None:
    request = DryRun.model_validate(
        {
            "transcript": [
                {"text": "hello?"},  # waits for a button: ignored
                {"button": "quote"},
                {"text": "Ada"},
                {"text": "555"},
                {"text": "+44 20 7946 0958"},
            ]
        }
    )
    decisions = play(validate(DEMO_FLOW), request)
    assert [d.get("ignored", False) for d in decisions] == [False, True, False, False, False, False]
    assert decisions[0]["current_step"] == "greet"
    assert [s["outcome"] for s in decisions[4]["steps"]] == ["invalid"]
    last = decisions[-1]
    assert last["status"] == "ended"
    assert [e["kind"] for e in last["effects"]] == ["tag", "lead_stage", "send"]
    assert last["variables"] == {"name": "Ada", "phone": "+442079460958"}


def test_a_timer_entry_fires_the_pending_delay() -> None:
    doc = validate(
        {
            "name": "d",
            "triggers": [{"type": "start"}],
            "start": "w",
            "steps": {
                "w": {"type": "delay", "hours": 2, "next": "e"},
                "e": {"type": "end", "text": "later"},
            },
        }
    )
    decisions = play(doc, DryRun.model_validate({"transcript": [{"timer": True}]}))
    assert decisions[1]["effects"][0]["data"]["text"] == "later"


@pytest.mark.parametrize("entry", [{}, {"text": "a", "button": "b"}, {"timer": True, "text": "x"}])
def test_an_entry_is_exactly_one_thing(entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DryRun.model_validate({"transcript": [entry]})
