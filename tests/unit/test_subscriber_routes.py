"""The route from a subject to its handler, as the services declare it
(``switchboard.runtime.subscribers``), exercised in memory with FastStream's
``TestNatsBroker``: every catalog message a durable's filters take reaches that durable's
handler and no other, and a failing handler's message is settled by the failure policy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from faststream.nats.testing import PatchedMessage
from nats.aio.client import Client
from nats.aio.msg import Msg

from switchboard.events.registry import all_models
from switchboard.events.schemas import subject_pattern
from switchboard.events.streams import subject_matches
from switchboard.events.topology import SERVICES
from switchboard.flows import runner as flows_runner
from switchboard.outbound import app as outbound_app
from switchboard.runtime import subscribers
from switchboard.runtime.bus import Bus
from switchboard.runtime.subscribers import Subscription

# Every service's subscriptions that FastStream serves, from the one list of declaring
# modules (the topology's ``declared_in``).
BY_SERVICE = {
    svc.name: tuple(s for s in subscribers.declared(svc.name) if s.reader == "faststream")
    for svc in SERVICES
}
FASTSTREAM = [sub for subs in BY_SERVICE.values() for sub in subs]


def _offline_bus() -> Bus:
    """A bus that was never connected: the routes under test never touch it (a dead letter
    would fail to publish, and the message would be nak'ed instead)."""
    nc = Client()
    return Bus(nc=nc, js=nc.jetstream(), source="switchboard://test")


def _ack_reply(sub: Subscription, seq: int) -> str:
    """The reply subject JetStream gives a delivered message (its metadata is read from it)."""
    return f"$JS.ACK.{sub.durable.stream}.{sub.durable.name}.1.{seq}.{seq}.1700000000000000000.0"


def _cases(subs: list[Subscription]) -> list[tuple[str, Subscription]]:
    """A concrete subject of every catalog message, with the subscription whose filters take
    it (the catalog's subjects are disjoint per durable within a stream)."""
    cases = []
    for model in all_models():
        subject = subject_pattern(model).replace(">", "ws1.chat1")
        for sub in subs:
            if any(subject_matches(f, subject) for f in sub.durable.filter_subjects):
                cases.append((subject, sub))
    return cases


def _recorder(name: str, got: list[tuple[str, str]]) -> Callable[[Msg], Awaitable[None]]:
    async def handle(msg: Msg) -> None:
        got.append((name, msg.subject))

    return handle


@pytest.mark.parametrize(
    "service_subs",
    [subs for subs in BY_SERVICE.values() if subs],
    ids=[name for name, subs in BY_SERVICE.items() if subs],
)
async def test_each_subject_reaches_the_handler_its_durable_declares(
    service_subs: tuple[Subscription, ...],
) -> None:
    got: list[tuple[str, str]] = []
    subs = list(service_subs)
    handlers = {sub: _recorder(sub.durable.name, got) for sub in subs}
    broker = NatsBroker(apply_types=False)  # as BusBroker
    broker.include_router(subscribers.router(handlers, _offline_bus()))
    cases = _cases(subs)
    assert cases, "no catalog message reaches these durables"
    async with TestNatsBroker(broker) as br:
        for seq, (subject, sub) in enumerate(cases, start=1):
            got.clear()
            await br.publish(b"{}", subject, reply_to=_ack_reply(sub, seq))
            assert got == [(sub.durable.name, subject)]


async def test_a_failing_handler_is_retried_later_not_acked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settled: list[tuple[str, float | None]] = []

    async def ack(_: PatchedMessage) -> None:
        settled.append(("ack", None))

    async def nak(_: PatchedMessage, delay: float | None = None) -> None:
        settled.append(("nak", delay))

    monkeypatch.setattr(PatchedMessage, "ack", ack)
    monkeypatch.setattr(PatchedMessage, "nak", nak)

    async def broken(_: Msg) -> None:
        raise RuntimeError("boom")

    sub = flows_runner.TIMERS
    broker = NatsBroker(apply_types=False)  # as BusBroker
    broker.include_router(subscribers.router({sub: broken}, _offline_bus()))
    subject = "cmd.flows.fire_timer.v1.ws1.t1"
    async with TestNatsBroker(broker) as br:
        await br.publish(b"{}", subject, reply_to=_ack_reply(sub, 1))
        assert settled == [("nak", sub.backoff_s[0])]  # a counted failure: its first backoff

    async def fine(_: Msg) -> None:
        return None

    settled.clear()
    broker = NatsBroker(apply_types=False)  # as BusBroker
    broker.include_router(subscribers.router({sub: fine}, _offline_bus()))
    async with TestNatsBroker(broker) as br:
        await br.publish(b"{}", subject, reply_to=_ack_reply(sub, 2))
    assert settled == [("ack", None)]


def test_a_raw_reader_subscription_is_refused_by_faststream() -> None:
    lane = next(s for s in outbound_app.SUBSCRIPTIONS if s.reader == "continuous_pull")
    with pytest.raises(ValueError, match=lane.durable.name):
        asyncio.run(subscribers.serve(_offline_bus(), {lane: _recorder("x", [])}, asyncio.Event()))


def test_every_faststream_subscription_is_covered() -> None:
    assert {s.durable.name for s in FASTSTREAM} == {
        "flows-conversations",
        "flows-crm-events",
        "flows-timers",
        "crm-commands",
        "outbound-erasure",
        "mtproto-commands",
        "mtproto-erasure",
    }


def test_about_names_the_thing_a_command_is_about_within_its_workspace() -> None:
    """An ``ordered`` subscription handles messages with one ``about`` one after another:
    a lead's creation and its moves share it; another workspace's lead of that id does not."""
    from switchboard.events import encode
    from switchboard.events.catalog.crm import ChangeLeadStage, CreateLead, UpdateContact

    def of(model: object, workspace: str = "acme") -> tuple[str, ...]:
        enc = encode(model, source="t", workspace_id=workspace)  # type: ignore[arg-type]
        return subscribers.about(Msg(Client(), enc.subject, headers=dict(enc.headers)))

    create = CreateLead(lead_id="ld_1", contact_id="ct_1", stage="new")
    move = ChangeLeadStage(lead_id="ld_1", to_stage="won")
    assert of(create) == of(move) == ("acme", "ld_1")
    assert of(move, "other") == ("other", "ld_1")
    assert of(UpdateContact(contact_id="ct_1")) == ("acme", "ct_1")
