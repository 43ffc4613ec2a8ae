"""The user-account client's pure rules: what outbound asks the gateway, and how each of
the gateway's answers becomes a send result or a classified error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from switchboard.events.catalog.common import Channel
from switchboard.events.catalog.mtproto import DeliverResult
from switchboard.events.catalog.outbound import (
    AnswerCallback,
    Button,
    DeleteMessage,
    EditMessage,
    Keyboard,
    OutText,
    SendMessage,
)
from switchboard.outbound.interactions import refusal
from switchboard.outbound.limits import send_limits
from switchboard.outbound.providers.base import Failure, ProviderError
from switchboard.outbound.providers.mtproto import (
    UNUSABLE,
    change_command,
    deliver_command,
    outcome,
    unchangeable,
    unsupported,
)
from switchboard.outbound.providers.telegram import Interaction, Target
from switchboard.runtime.accounts import Account

DEADLINE = datetime(2026, 1, 5, 10, 0, 15, tzinfo=UTC)


def _cmd(**kw: object) -> SendMessage:
    base: dict[str, object] = {
        "message_id": "m-1",
        "channel": Channel.MTPROTO,
        "account": "ann",
        "recipient": "@buyer",
        "content": OutText(text="hi"),
    }
    return SendMessage.model_validate({**base, **kw})


def test_the_command_names_the_session_the_peer_and_the_reply() -> None:
    cmd = deliver_command(_cmd(reply_to="42"), "ann", DEADLINE)
    assert (cmd.session_id, cmd.peer, cmd.reply_to, cmd.deadline) == ("ann", "@buyer", 42, DEADLINE)
    assert cmd.subject() == "cmd.mtproto.deliver.v1.ann"


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (
            {"keyboard": Keyboard(rows=((Button(text="A", callback_data="a"),),))},
            "unsupported_content",
        ),
        ({"reply_to": "not-a-number"}, "unsupported_content"),
    ],
)
def test_what_a_user_account_cannot_send_fails_before_any_call(
    extra: dict[str, object], code: str
) -> None:
    with pytest.raises(ProviderError) as raised:
        deliver_command(_cmd(**extra), "ann", DEADLINE)
    assert (raised.value.failure, raised.value.code) == (Failure.PERMANENT, code)


def test_each_answer_maps_to_its_failure_class() -> None:
    assert outcome(DeliverResult(status="sent", provider_message_id="7")).provider_message_id == "7"
    cases = [
        (DeliverResult(status="flood_wait", error_code="FLOOD_WAIT_30", retry_after=30),
         Failure.RATE_LIMITED, "FLOOD_WAIT_30"),
        (DeliverResult(status="unusable", error_code="PEER_FLOOD"), Failure.PERMANENT, UNUSABLE),
        (DeliverResult(status="refused", error_code="PEER_ID_INVALID"),
         Failure.PERMANENT, "PEER_ID_INVALID"),
        (DeliverResult(status="retry", error_code="DISCONNECTED"),
         Failure.RETRYABLE, "DISCONNECTED"),
        (DeliverResult(status="sent"), Failure.RETRYABLE, "bad_answer"),
    ]  # fmt: skip
    for answer, failure, code in cases:
        with pytest.raises(ProviderError) as raised:
            outcome(answer)
        assert (raised.value.failure, raised.value.code) == (failure, code)
    with pytest.raises(ProviderError) as flood:
        outcome(cases[0][0])
    assert flood.value.retry_after == 30


def test_a_user_account_takes_an_account_and_a_chat_limit() -> None:
    account = Account(channel=Channel.MTPROTO, id="ann", workspace_id="demo")
    limits = send_limits(account, "@buyer")
    assert limits.account.name == "mtproto.ann.account"
    assert limits.recipient is not None
    assert limits.account_pause == "mtproto.ann"
    group = send_limits(account, "-100123")
    assert group.recipient is not None
    assert group.recipient.limit.per == 60


def test_the_api_names_the_field_a_user_account_cannot_send() -> None:
    sticker = {"kind": "sticker", "source": {"file_id": "CAAD"}}
    bot_photo = {"kind": "photo", "source": {"file_id": "AgAC"}}
    url_photo = {"kind": "photo", "source": {"url": "https://x/p.jpg"}}
    kb = Keyboard(rows=((Button(text="A", callback_data="a"),),))
    assert unsupported(_cmd(content=sticker)) is not None
    assert unsupported(_cmd(content=sticker))[0] == "content.kind"  # type: ignore[index]
    assert unsupported(_cmd(content=bot_photo))[0] == "content.source.file_id"  # type: ignore[index]
    assert unsupported(_cmd(keyboard=kb))[0] == "keyboard"  # type: ignore[index]
    assert unsupported(_cmd(reply_to="x"))[0] == "reply_to"  # type: ignore[index]
    assert unsupported(_cmd(content=url_photo, reply_to="12")) is None


def _change(model: type[EditMessage | DeleteMessage], **kw: object) -> EditMessage | DeleteMessage:
    base = {"request_id": "r1", "channel": "mtproto", "account": "sales-1", "message_id": "m1"}
    return model.model_validate({**base, **kw})


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (_change(EditMessage, text="x", keyboard={"rows": [[{"text": "A", "url": "https://a"}]]}),
         "keyboard"),
        (_change(EditMessage, text="*x*", parse_mode="Markdown"), "parse_mode"),
        (_change(DeleteMessage, message_id=None, recipient="@a", provider_message_id="x1"),
         "provider_message_id"),
        (AnswerCallback(request_id="r1", channel=Channel.MTPROTO, account="sales-1",
                        callback_query_id="1"), "channel"),
    ],
    ids=["keyboard", "legacy-markdown", "not-a-telegram-id", "callback-answer"],
)  # fmt: skip
def test_what_a_user_account_cannot_change_is_named(cmd: Interaction, field: str) -> None:
    problem = unchangeable(cmd)
    assert problem is not None
    assert problem[0] == field
    refused = refusal(cmd)
    assert refused is not None
    assert refused[0] == field


def test_an_edit_or_deletion_names_the_message_the_send_made() -> None:
    edit = _change(EditMessage, caption="new <b>caption</b>", parse_mode="HTML")
    assert unchangeable(edit) is None
    made = change_command(edit, Target("@ann", "17"), "sales-1", DEADLINE)
    assert (made.action, made.peer, made.provider_message_id) == ("edit", "@ann", 17)
    assert (made.text, made.caption, made.parse_mode) == (None, "new <b>caption</b>", "HTML")
    gone = change_command(_change(DeleteMessage), Target("555", "18"), "sales-1", DEADLINE)
    assert (gone.action, gone.peer, gone.provider_message_id, gone.text) == (
        "delete",
        "555",
        18,
        None,
    )
    # a user account's edit is measured as a bot's: over 4096 shown characters is too long
    long = refusal(_change(EditMessage, text="x" * 4097))
    assert long is not None
    assert long[0::2] == ("text", "too_long")
