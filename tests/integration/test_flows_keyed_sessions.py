"""Keyed flows session ids on real NATS: a run an earlier version recorded under the legacy
(unkeyed) session id continues after the upgrade, there, and the conversation's next run is
under its keyed id; a new conversation is keyed from its first record; and a deployment
whose first run was recorded keyed never reads a legacy id."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.flows import FlowsEnv, flows_stack

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.flows import FlowConversation, RunRecorded, RunStatus
from switchboard.flows.app import create_app as flows_app
from switchboard.flows.document import validate
from switchboard.flows.engine import Input
from switchboard.flows.session_lookup import SessionLookup
from switchboard.flows.sessions import legacy_session_id, plan, session_filter, session_id
from switchboard.flows.settings import FlowsSettings
from switchboard.flows.triggers import Published
from switchboard.runtime import identity
from switchboard.runtime.aggregates import append_expecting, read_filter
from switchboard.runtime.bus import Bus
from switchboard.runtime.settings import load_settings
from switchboard.runtime.testing import serve_app

PEPPER = "flows-keyed-sessions-pepper-0123"
TOKEN = "400000003:flows-keyed"
SECRET = "flows-keyed-secret"
FLOW: dict[str, Any] = {
    "name": "Ask a name",
    "channels": [{"channel": "telegram", "account": "demo"}],
    "triggers": [{"type": "start"}],
    "start": "ask",
    "steps": {
        "ask": {"type": "ask", "text": "What is your name?", "var": "name", "next": "thanks"},
        "thanks": {"type": "end", "text": "Thanks, {{ vars.name }}."},
    },
}


@pytest.fixture(autouse=True)
def _dev_pepper_after() -> Iterator[None]:
    yield
    identity.configure(identity.DEV_PEPPER)


@pytest.fixture
async def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FlowsEnv]:
    async with flows_stack(
        nats_url, monkeypatch, token=TOKEN, secret=SECRET, SWITCHBOARD_IDENTITY_PEPPER=PEPPER
    ) as stack:
        yield stack


def _conversation(chat: int) -> FlowConversation:
    return FlowConversation(
        channel=Channel.TELEGRAM, account="demo", chat_id=str(chat), sender_id=str(chat)
    )


async def _record_as_before(bus: Bus, session: str, flow_id: str, chat: int) -> RunRecorded:
    """What the earlier version left: a run of FLOW started in ``chat`` under ``session``,
    waiting for the customer's name."""
    (record,) = plan(
        session=session,
        current=None,
        active_doc=None,
        published=[Published(flow_id, 1, validate(FLOW))],
        inp=Input("text", f"before-{chat}", datetime.now(UTC), text="/start"),
        conversation=_conversation(chat),
    )
    await append_expecting(
        bus, record, session_filter(session), 0, aggregate=session, workspace_id="demo"
    )
    return record


async def _records(bus: Bus, session: str) -> list[RunRecorded]:
    out = []
    for stored in await read_filter(bus, "FLOWS", session_filter(session)):
        assert isinstance(stored.decoded.model, RunRecorded)
        out.append(stored.decoded.model)
    return out


async def test_a_run_recorded_under_its_legacy_id_continues_after_the_upgrade(
    env: FlowsEnv,
) -> None:
    async with serve_app(flows_app(load_settings(FlowsSettings))) as flows:
        flow_id = await env.publish_flow(flows, FLOW)
    old, new = 501, 502
    keyed = session_id("demo", Channel.TELEGRAM, "demo", str(old))
    legacy = legacy_session_id("demo", Channel.TELEGRAM, "demo", str(old))
    # the deployment's pepper keys it: not computable from the chat id alone
    mac = hmac.new(
        PEPPER.encode(), f"session\x1fdemo\x1ftelegram\x1fdemo\x1f{old}".encode(), "sha256"
    )
    assert keyed == "cs_" + mac.hexdigest()[:24] != legacy
    bus = await Bus.connect(env.nats_url, name="keyed-sessions-test")
    try:
        before = await _record_as_before(bus, legacy, flow_id, old)
        assert before.status is RunStatus.WAITING
        async with serve_app(flows_app(load_settings(FlowsSettings))):
            # the customer answers the question the earlier version asked: the run goes on
            await env.say(old, "Ada Lovelace")
            assert await env.until(old, 1) == ["Thanks, Ada Lovelace."]
            continued = await _records(bus, legacy)
            assert [r.run_id for r in continued] == [before.run_id] * 2
            assert continued[-1].status is RunStatus.ENDED
            assert await _records(bus, keyed) == []
            # its next run is under the keyed id; the legacy id takes nothing more
            await env.say(old, "/start")
            assert (await env.until(old, 2))[1] == "What is your name?"
            (next_run,) = await _records(bus, keyed)
            assert next_run.session == keyed
            assert next_run.run_id != before.run_id
            assert len(await _records(bus, legacy)) == 2
            # a new conversation is keyed from its first record
            await env.say(new, "/start")
            assert await env.until(new, 1) == ["What is your name?"]
            new_keyed = session_id("demo", Channel.TELEGRAM, "demo", str(new))
            assert [r.session for r in await _records(bus, new_keyed)] == [new_keyed]
            new_legacy = legacy_session_id("demo", Channel.TELEGRAM, "demo", str(new))
            assert await _records(bus, new_legacy) == []
    finally:
        await bus.close()


async def test_legacy_ids_are_read_only_where_the_first_run_was_recorded_unkeyed(
    nats_url: str,
) -> None:
    identity.configure(PEPPER)
    bus = await Bus.connect(nats_url, name="keyed-sessions-first")
    try:
        await bus.provision()
        assert await SessionLookup(bus).legacy_sessions() is False  # nothing recorded yet
        keyed = session_id("demo", Channel.TELEGRAM, "demo", "601")
        await _record_as_before(bus, keyed, "f1", 601)
        assert await SessionLookup(bus).legacy_sessions() is False  # born keyed
        await bus.js.purge_stream("FLOWS")
        legacy = legacy_session_id("demo", Channel.TELEGRAM, "demo", "602")
        await _record_as_before(bus, legacy, "f1", 602)
        await _record_as_before(bus, session_id("demo", Channel.TELEGRAM, "demo", "603"), "f1", 603)
        assert await SessionLookup(bus).legacy_sessions() is True
    finally:
        await bus.close()
