"""Interactions as pure decisions: which Bot API call and parameters each command becomes,
what the commands refuse, and when a refusal on a redelivery means the call went through."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from switchboard.events.catalog.outbound import AnswerCallback, DeleteMessage, EditMessage
from switchboard.outbound.interactions import already_done
from switchboard.outbound.providers.base import Failure, ProviderError
from switchboard.outbound.providers.telegram import Target, interaction_request

BASE = {"request_id": "r1", "channel": "telegram", "account": "shop"}
TARGET = Target("555", "42")


def test_an_answer_is_answer_callback_query_with_its_options() -> None:
    cmd = AnswerCallback(**BASE, callback_query_id="q1", text="Done", show_alert=True)
    request = interaction_request(cmd, None)
    assert request.method == "answerCallbackQuery"
    assert request.params == {"callback_query_id": "q1", "text": "Done", "show_alert": True}


@pytest.mark.parametrize(
    ("fields", "method"),
    [
        ({"text": "new"}, "editMessageText"),
        ({"caption": "new"}, "editMessageCaption"),
        ({"keyboard": {"rows": [[{"text": "a", "callback_data": "a"}]]}}, "editMessageReplyMarkup"),
    ],
)
def test_an_edit_picks_the_method_for_what_changes(fields: dict[str, object], method: str) -> None:
    request = interaction_request(EditMessage(**BASE, message_id="m1", **fields), TARGET)
    assert request.method == method
    assert (request.params["chat_id"], request.params["message_id"]) == (555, 42)


def test_a_delete_is_delete_message() -> None:
    request = interaction_request(DeleteMessage(**BASE, message_id="m1"), TARGET)
    assert (request.method, request.params) == ("deleteMessage", {"chat_id": 555, "message_id": 42})


@pytest.mark.parametrize(
    "fields",
    [
        {"message_id": "m1"},  # nothing to edit
        {"message_id": "m1", "text": "a", "caption": "b"},
        {"message_id": "m1", "keyboard": {"type": "reply", "rows": [[{"text": "a"}]]}},
        {"text": "a"},  # no target
        {"message_id": "m1", "recipient": "1", "provider_message_id": "2", "text": "a"},
    ],
)
def test_an_edit_without_one_target_and_one_change_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EditMessage(**BASE, **fields)


def test_a_refusal_counts_as_done_only_on_a_redelivery() -> None:
    gone = ProviderError(Failure.PERMANENT, "400", "Bad Request: message to delete not found")
    assert already_done(gone, redelivered=True)
    assert not already_done(gone, redelivered=False)
    other = ProviderError(Failure.PERMANENT, "400", "Bad Request: chat not found")
    assert not already_done(other, redelivered=True)


def test_a_bot_menu_is_set_my_commands() -> None:
    from switchboard.events.catalog.outbound import SetBotCommands
    from switchboard.outbound.providers.telegram import interaction_request

    cmd = SetBotCommands.model_validate(
        {
            "request_id": "menu:1",
            "channel": "telegram",
            "account": "demo",
            "commands": [{"command": "quote", "description": "Get a quote"}],
            "language_code": "de",
        }
    )
    request = interaction_request(cmd, None)
    assert request.method == "setMyCommands"
    assert request.params == {
        "commands": [{"command": "quote", "description": "Get a quote"}],
        "language_code": "de",
    }
