"""Session ids are keyed with the identity pepper; a conversation recorded under its legacy,
unkeyed id goes on there while its run is in progress, then moves to its keyed id with its
memory (pure: no NATS)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest

from switchboard.events import decode_message, encode
from switchboard.events.catalog.flows import RunRecorded, RunStatus
from switchboard.events.ids import stable_hash
from switchboard.flows.engine import Input
from switchboard.flows.runner import last_per_conversation, scheduled_input, session_ids
from switchboard.flows.sessions import legacy_session_id, plan, resolve, session_id
from switchboard.flows.triggers import Published
from switchboard.runtime import identity
from switchboard.runtime.aggregates import Stored

from .flows_support import CONV, T0, flow

PHONE = "4917612345678"
KEY = ("w", "whatsapp", "pn1", PHONE)
WELCOME = flow(
    {"a": {"type": "ask", "text": "Your name?", "var": "name", "next": "b"},
     "b": {"type": "end", "text": "Thanks, {{ vars.name }}."}},
    triggers=[{"type": "first_message"}, {"type": "command", "command": "start"}],
)  # fmt: skip


@pytest.fixture(autouse=True)
def _dev_pepper() -> Iterator[None]:
    yield
    identity.configure(identity.DEV_PEPPER)


def test_a_session_id_is_keyed_with_the_pepper_and_not_computable_from_the_number() -> None:
    identity.configure("pepper-one-0123456789")
    one = session_id(*KEY)
    expected = hmac.new(
        b"pepper-one-0123456789", "\x1f".join(("session", *KEY)).encode(), hashlib.sha256
    )
    assert one == "cs_" + expected.hexdigest()[:24]
    identity.configure("pepper-two-0123456789")
    assert session_id(*KEY) != one
    # what anyone can compute from the number is the legacy id, which no new session takes
    unkeyed = "cs_" + stable_hash("session", *KEY)[:24]
    assert legacy_session_id(*KEY) == unkeyed
    assert unkeyed not in (one, session_id(*KEY))
    assert PHONE not in one


def _stored(rec: RunRecorded, seq: int) -> Stored:
    enc = encode(rec, source="test", workspace_id="demo")
    return Stored(seq, decode_message(enc.subject, enc.headers, enc.body))


def _started(session: str, input_id: str = "m1", text: str = "/start") -> RunRecorded:
    (rec,) = plan(
        session=session,
        current=None,
        active_doc=None,
        published=[Published("f1", 1, WELCOME)],
        inp=Input("text", input_id, T0, text=text),
        conversation=CONV,
    )
    return rec


def test_resolve_keeps_a_legacy_run_in_progress_and_moves_an_ended_one() -> None:
    keyed, legacy = session_ids("demo", CONV)
    waiting = _started(legacy)
    assert waiting.status is RunStatus.WAITING
    ended = waiting.model_copy(update={"status": RunStatus.ENDED, "cursor": None})
    # nothing recorded: a new conversation is keyed
    r = resolve(keyed, legacy, None, None)
    assert (r.session, r.current, r.expected) == (keyed, None, 0)
    # a run in progress under the legacy id goes on there, after its last record
    on_legacy = _stored(waiting, 7)
    r = resolve(keyed, legacy, None, on_legacy)
    assert (r.session, r.current, r.expected) == (legacy, on_legacy, 7)
    # ended: the next record is the keyed id's first, planned on the legacy record
    done = _stored(ended, 8)
    r = resolve(keyed, legacy, None, done)
    assert (r.session, r.current, r.expected) == (keyed, done, 0)
    # once anything is keyed, the keyed id is the conversation's
    on_keyed = _stored(_started(keyed, "m9"), 12)
    r = resolve(keyed, legacy, on_keyed, on_legacy)
    assert (r.session, r.current, r.expected) == (keyed, on_keyed, 12)
    # no legacy id to look at (a timer or a hand-back names its session)
    r = resolve(legacy, None, on_legacy, None)
    assert (r.session, r.expected) == (legacy, 7)


def test_a_conversation_moved_to_its_keyed_id_keeps_its_memory() -> None:
    keyed, legacy = session_ids("demo", CONV)
    ended = _started(legacy).model_copy(update={"status": RunStatus.ENDED, "cursor": None})
    r = resolve(keyed, legacy, None, _stored(ended, 3))
    assert r.current is not None
    current = r.current.decoded.model
    assert isinstance(current, RunRecorded)

    def planned(inp: Input) -> list[RunRecorded]:
        return plan(
            session=r.session,
            current=current,
            active_doc=None,
            published=[Published("f1", 1, WELCOME)],
            inp=inp,
            conversation=CONV,
        )

    # an input consumed under the legacy id (redelivered after the upgrade) is not taken again
    assert planned(Input("text", "m1", T0, text="/start")) == []
    # not a new conversation: its first-message flow does not start again
    assert planned(Input("text", "m2", T0, text="hello")) == []
    (again,) = planned(Input("text", "m3", T0, text="/start"))
    assert again.session == keyed
    assert again.recent_inputs == ("m1", "m3")


def _view(session: str, chat: str, version: int, status: str) -> dict[str, Any]:
    conv = CONV.model_copy(update={"chat_id": chat}).model_dump(mode="json")
    return {"session": session, "conversation": conv, "version": version, "status": status}


def test_the_latest_run_of_a_conversation_is_found_across_its_two_ids() -> None:
    keyed, legacy = session_ids("demo", CONV)
    views = [
        _view(keyed, CONV.chat_id, 9, "waiting"),
        _view(legacy, CONV.chat_id, 5, "ended"),
        _view("cs_other", "8", 6, "ended"),
    ]
    last = last_per_conversation(views)
    assert [(v["session"], v["version"]) for v in last] == [(keyed, 9), ("cs_other", 6)]


def test_a_scheduled_start_made_under_the_legacy_id_is_not_made_again_after_the_move() -> None:
    """A schedule fire the earlier version was working through when it was stopped comes
    again to this version: a conversation it had started (and ended) is not started again."""
    keyed, legacy = session_ids("demo", CONV)
    news = flow(
        {"a": {"type": "end", "text": "News!"}},
        triggers=[{"type": "schedule", "at": "2026-01-01T00:00:00+00:00"}],
    )
    published = [Published("f2", 1, news)]

    def planned(session: str, current: RunRecorded | None, inp: Input) -> list[RunRecorded]:
        return plan(
            session=session,
            current=current,
            active_doc=None,
            published=published,
            inp=inp,
            conversation=CONV,
        )

    # as the earlier version recorded it (its input id named the legacy session)
    earlier = Input("event", f"req1:{legacy}", T0, event="schedule", data="f2")
    (before,) = planned(legacy, None, earlier)
    assert before.status is RunStatus.ENDED
    r = resolve(keyed, legacy, None, _stored(before, 4))
    again = scheduled_input(keyed, legacy, "req1", "f2", T0)
    assert again.id == f"req1:{keyed}"
    assert planned(r.session, before, again) == []
    # a later fire starts it in the conversation, now under its keyed id
    (later,) = planned(r.session, before, scheduled_input(keyed, legacy, "req2", "f2", T0))
    assert later.session == keyed
