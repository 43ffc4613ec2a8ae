"""Subjects, envelope, encode/decode and upcasting of the event catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchboard.events import (
    DecodeError,
    Envelope,
    EnvelopeError,
    Event,
    decode,
    decode_message,
    encode,
    register,
    registry,
    upcaster,
)
from switchboard.events.catalog.common import Channel, Chat, Sender
from switchboard.events.catalog.conv import MessageReceived, ProviderIds, TextContent
from switchboard.events.catalog.outbound import OutText, SendMessage, chat_bucket
from switchboard.events.streams import stream_for_subject, subject_matches
from switchboard.events.subjects import parse_subject, token, untoken

T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _received(**kw: Any) -> MessageReceived:
    base: dict[str, Any] = dict(
        channel=Channel.TELEGRAM,
        account="demo",
        chat=Chat(id="555"),
        sender=Sender(id="555"),
        content=TextContent(text="hi"),
        sent_at=T,
        received_at=T,
        provider=ProviderIds(message_id="1", raw_id="tg:demo:1"),
    )
    base.update(kw)
    return MessageReceived(**base)


@given(
    st.one_of(st.sampled_from(["", "_", "%", "%5F", ".", "a.b", "*", ">"]), st.text(max_size=40))
)
def test_token_round_trips_and_is_one_nats_token(value: str) -> None:
    tok = token(value)
    assert untoken(tok) == value
    assert not any(c in tok for c in ".*> \t\r\n")
    assert tok


def test_subjects_follow_the_contract() -> None:
    ev = _received(account="acme.bot")
    assert ev.subject() == "conv.message_received.v1.telegram.acme%2Ebot"
    parsed = parse_subject(ev.subject())
    assert (parsed.kind, parsed.name, parsed.version) == ("event", "conv.message_received", 1)
    assert parsed.tokens == ("telegram", "acme.bot")
    cmd = SendMessage(
        message_id="m1",
        channel=Channel.WHATSAPP,
        account="15550001111",
        recipient="49176",
        content=OutText(text="hello"),
    )
    # the last token is the recipient's bucket (outbound's order of a chat's sends)
    assert cmd.subject() == f"cmd.outbound.send.v1.whatsapp.15550001111.{chat_bucket('49176')}"
    assert len(chat_bucket("49176")) == 4
    assert stream_for_subject(cmd.subject()).name == "OUTBOUND"
    assert stream_for_subject(ev.subject()).name == "CONV"
    with pytest.raises(ValueError, match="version"):
        parse_subject("conv.message_received.x1")


def test_wildcards() -> None:
    assert subject_matches("conv.>", "conv.a.v1")
    assert not subject_matches("conv.>", "conv")
    assert subject_matches("crm.*.*.ct_1", "crm.contact_created.v1.ct_1")
    assert not subject_matches("crm.*.*.ct_1", "crm.contact_created.v1.ct_2")


def test_encode_decode_round_trip_with_cloudevents_headers() -> None:
    ev = _received()
    enc = encode(ev, source="switchboard://ingest/a", workspace_id="acme")
    h = enc.headers
    assert h["ce-specversion"] == "1.0"
    assert h["ce-type"] == "switchboard.conv.message_received.v1"
    assert h["ce-id"] == h["Nats-Msg-Id"] == "telegram:demo:555/1/message_received"
    assert h["ce-subject"] == "telegram/demo/555"
    assert h["workspace-id"] == "acme"
    assert h["correlation-id"] == h["ce-id"]
    decoded = decode_message(enc.subject, h, enc.body)
    assert decoded.model == ev
    assert decoded.envelope.workspace_id == "acme"


def test_caused_messages_inherit_correlation_trace_and_workspace() -> None:
    cause = Envelope(
        id="raw-1",
        type="switchboard.raw.telegram.v1",
        source="s",
        time=T,
        workspace_id="acme",
        correlation_id="corr-9",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    enc = encode(_received(), source="switchboard://ingest/a", cause=cause)
    assert enc.headers["causation-id"] == "raw-1"
    assert enc.headers["correlation-id"] == "corr-9"
    assert enc.headers["workspace-id"] == "acme"
    assert enc.headers["traceparent"] == cause.traceparent


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({}, b"{}", "missing CloudEvents header"),
        (
            {"ce-id": "1", "ce-type": "nope", "ce-source": "s", "ce-specversion": "1.0"},
            b"{}",
            "is not switchboard",
        ),
        (
            {
                "ce-id": "1",
                "ce-type": "switchboard.conv.nothing.v1",
                "ce-source": "s",
                "ce-specversion": "1.0",
            },
            b"{}",
            "not in the event catalog",
        ),
        (
            {
                "ce-id": "1",
                "ce-type": "switchboard.conv.message_received.v1",
                "ce-source": "s",
                "ce-specversion": "1.0",
            },
            b"{not json",
            "not JSON",
        ),
        (
            {
                "ce-id": "1",
                "ce-type": "switchboard.conv.message_received.v1",
                "ce-source": "s",
                "ce-specversion": "1.0",
            },
            b"[]",
            "not a JSON object",
        ),
        (
            {
                "ce-id": "1",
                "ce-type": "switchboard.conv.message_received.v1",
                "ce-source": "s",
                "ce-specversion": "1.0",
            },
            b'{"channel": "fax"}',
            "channel",
        ),
        (
            {
                "ce-id": "1",
                "ce-type": "switchboard.conv.message_received.v1",
                "ce-source": "s",
                "ce-specversion": "0.3",
            },
            b"{}",
            "specversion",
        ),
        (
            # an old version is read by json.loads before its upcaster: nested past Python's
            # stack it raised RecursionError, dead-lettered as an unexplained handler error
            {
                "ce-id": "1",
                "ce-type": "switchboard.mtproto.login_start.v1",
                "ce-source": "s",
                "ce-specversion": "1.0",
            },
            b"[" * 100_000 + b"]" * 100_000,
            "not JSON",
        ),
    ],
)
def test_decode_errors_say_precisely_why(headers: dict[str, str], body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode("conv.x.v1", headers, body)


def test_extra_fields_are_rejected() -> None:
    body = json.loads(encode(_received(), source="s").body)
    body["surprise"] = 1
    headers = encode(_received(), source="s").headers
    with pytest.raises(DecodeError, match="surprise"):
        decode("x", headers, json.dumps(body).encode())


def test_envelope_requires_attributes() -> None:
    with pytest.raises(EnvelopeError, match="ce-source"):
        Envelope.from_headers({"ce-id": "1", "ce-type": "t", "ce-specversion": "1.0"})


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Register test-only models without leaking them into the catalog."""
    models, casts = dict(registry._MODELS), dict(registry._UPCASTERS)
    try:
        yield
    finally:
        registry._MODELS.clear()
        registry._MODELS.update(models)
        registry._UPCASTERS.clear()
        registry._UPCASTERS.update(casts)


def test_old_versions_are_upcast_to_the_latest(scratch_registry: None) -> None:
    @register("test.widget_made", 1)
    class WidgetMadeV1(Event):
        """v1: a widget was made (price in cents)."""

        widget: str
        cents: int

    @register("test.widget_made", 2)
    class WidgetMadeV2(Event):
        """v2: a widget was made (price as a decimal string with currency)."""

        widget: str
        price: str
        currency: str

    @upcaster("test.widget_made", 1)
    def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {"widget": data["widget"], "price": f"{data['cents'] / 100:.2f}", "currency": "EUR"}

    old = encode(WidgetMadeV1(widget="w1", cents=1250), source="tests")
    assert old.headers["ce-type"] == "switchboard.test.widget_made.v1"
    decoded = decode_message(old.subject, old.headers, old.body)
    assert decoded.wire_version == 1
    assert decoded.model == WidgetMadeV2(widget="w1", price="12.50", currency="EUR")


def test_a_version_without_upcaster_is_a_decode_error(scratch_registry: None) -> None:
    @register("test.gadget", 1)
    class G1(Event):
        """v1."""

    @register("test.gadget", 2)
    class G2(Event):
        """v2."""

    enc = encode(G1(), source="t")
    with pytest.raises(DecodeError, match="no upcaster"):
        decode(enc.subject, enc.headers, enc.body)


def test_models_need_docstrings(scratch_registry: None) -> None:
    with pytest.raises(ValueError, match="docstring"):

        @register("test.undocumented", 1)
        class Undocumented(Event):
            pass


def test_names_and_versions_are_unique(scratch_registry: None) -> None:
    class Twin(Event):
        """A second class under an existing name."""

    with pytest.raises(ValueError, match="registered twice"):
        register("conv.message_received", 1)(Twin)


def test_nul_characters_become_replacement_characters_on_decode() -> None:
    from switchboard.events.codec import without_nul

    msg = MessageReceived(
        channel=Channel.GENERIC,
        account="shop",
        chat=Chat(id="c\x001"),
        sender=Sender(id="u1", first_name="Ni\x00na"),
        content=TextContent(text="a\x00b \\u0000 literal"),
        provider=ProviderIds(message_id="m1"),
        sent_at=datetime(2026, 11, 21, tzinfo=UTC),
        received_at=datetime(2026, 11, 21, tzinfo=UTC),
    )
    enc = encode(msg, source="test")
    decoded = decode(enc.subject, enc.headers, enc.body)
    assert isinstance(decoded, MessageReceived)
    assert decoded.content.text == "a\ufffdb \\u0000 literal"  # an escaped backslash stays
    assert decoded.sender.first_name == "Ni\ufffdna"
    assert decoded.chat.id == "c\ufffd1"
    clean = b'{"text": "plain"}'
    assert without_nul(clean) is clean
