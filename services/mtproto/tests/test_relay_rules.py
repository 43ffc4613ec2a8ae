"""The gateway's rules for outbound's sends through a session: which content a user account
can send, and how Telegram's errors become answers."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from switchboard.events.catalog.mtproto import DeliverAsUser, DeliverResult
from switchboard.mtproto.ports import (
    AuthKeyUnregisteredError,
    DisconnectedError,
    MtprotoError,
    Peer,
    PeerNotFoundError,
)
from switchboard.mtproto.relay import Outgoing, classify, deliver_subject, outgoing
from switchboard.runtime.markup import Span

DEADLINE = datetime(2026, 1, 5, tzinfo=UTC)


def _cmd(content: dict[str, object]) -> DeliverAsUser:
    return DeliverAsUser.model_validate(
        {"session_id": "ann", "message_id": "m", "peer": "@b", "content": content,
         "deadline": DEADLINE}
    )  # fmt: skip


def test_text_media_and_locations_become_what_the_port_sends() -> None:
    assert outgoing(_cmd({"kind": "text", "text": "hi"})) == Outgoing(text="hi")
    data = base64.b64encode(b"voice bytes").decode()
    voice = outgoing(_cmd({"kind": "voice", "source": {"data_base64": data}, "caption": "c"}))
    assert isinstance(voice, Outgoing)
    assert voice.media is not None
    assert (voice.media.kind, voice.media.data, voice.caption) == ("voice", b"voice bytes", "c")
    url = outgoing(_cmd({"kind": "photo", "source": {"url": "https://x/p.jpg"}}))
    assert isinstance(url, Outgoing)
    assert url.media is not None
    assert url.media.url == "https://x/p.jpg"
    where = outgoing(_cmd({"kind": "location", "latitude": 1.5, "longitude": 2.5}))
    assert isinstance(where, Outgoing)
    assert where.media is not None
    assert (where.media.latitude, where.media.longitude) == (1.5, 2.5)


def test_a_text_with_a_parse_mode_is_sent_as_its_words_and_spans() -> None:
    """It went out with its tags as words: a user account has no parse mode, its client
    sends the entities the parse mode means."""
    html = outgoing(_cmd({"kind": "text", "text": "<b>Hi</b> you", "parse_mode": "HTML"}))
    assert html == Outgoing(text="Hi you", spans=(Span("bold", 0, 2),))
    md = outgoing(_cmd({"kind": "text", "text": "*Hi* you", "parse_mode": "MarkdownV2"}))
    assert md == html
    photo = {"kind": "photo", "source": {"url": "https://x/p.jpg"}, "caption": "<i>Hi</i>",
             "parse_mode": "HTML"}  # fmt: skip
    captioned = outgoing(_cmd(photo))
    assert isinstance(captioned, Outgoing)
    assert (captioned.caption, captioned.spans) == ("Hi", (Span("italic", 0, 2),))


def test_what_a_user_account_cannot_send_is_refused_with_the_reason() -> None:
    for content in (
        {"kind": "sticker", "source": {"file_id": "CAAD"}},
        {"kind": "photo", "source": {"file_id": "AgAC-bot-file"}},
        {"kind": "template", "name": "t", "language": "en"},
        {"kind": "text", "text": "*legacy*", "parse_mode": "Markdown"},
    ):
        answer = outgoing(_cmd(content))
        assert isinstance(answer, DeliverResult)
        assert (answer.status, answer.error_code) == ("refused", "unsupported_content")


def test_telegram_errors_become_answers() -> None:
    assert classify(AuthKeyUnregisteredError()).status == "unusable"
    assert classify(MtprotoError(reason="PEER_FLOOD")).status == "unusable"
    assert classify(DisconnectedError()).status == "retry"
    refused = classify(PeerNotFoundError())
    assert (refused.status, refused.error_code) == ("refused", "PEER_ID_INVALID")
    assert deliver_subject("ann") == "cmd.mtproto.deliver.v1.ann"


def test_a_read_of_our_messages_maps_to_outbox_read_and_inbox_reads_do_not() -> None:
    from telethon import events, types

    from switchboard.mtproto.ports import OutboxRead, PeerType
    from switchboard.mtproto.telethon_adapter import map_event

    out = events.MessageRead.build(types.UpdateReadHistoryOutbox(types.PeerUser(42), 7, 1, 1))
    assert map_event(out) == OutboxRead(Peer(id=42, type=PeerType.USER), 7)
    channel = events.MessageRead.build(types.UpdateReadChannelOutbox(99, 5))
    mapped = map_event(channel)
    assert isinstance(mapped, OutboxRead)
    assert (mapped.peer.id, mapped.peer.type, mapped.max_id) == (99, PeerType.CHANNEL, 5)
    inbox = events.MessageRead.build(types.UpdateReadHistoryInbox(types.PeerUser(42), 7, 0, 1, 1))
    assert map_event(inbox) is None
