"""Viber's welcome message: the answer to conversation_started, and the settings it is
made of, refused when the account is saved if Viber would refuse them."""

from __future__ import annotations

import json

import pytest

from switchboard.events.catalog.common import Channel
from switchboard.runtime.accounts import Account
from switchboard.runtime.viber_welcome import problems, welcome_message


def _bot(**settings: str) -> Account:
    return Account(channel=Channel.VIBER, id="shop", settings=settings)


STARTED = json.dumps({"event": "conversation_started", "user": {"id": "u1"}}).encode()


def test_only_conversation_started_is_answered_with_the_welcome() -> None:
    settings = {"welcome_text": "Hi", "welcome_buttons": "Start, Prices",
                "sender_name": "A shop with a rather long name here"}  # fmt: skip
    message = welcome_message(_bot(**settings), STARTED)
    assert message is not None
    assert message["sender"] == {"name": "A shop with a rather long na"}  # 28: Viber's limit
    assert [(b["Text"], b["ActionBody"], b["Columns"]) for b in message["keyboard"]["Buttons"]] == [
        ("Start", "Start", 3), ("Prices", "Prices", 3)
    ]  # fmt: skip
    said = json.dumps({"event": "message", "message": {"text": "conversation_started"}})
    assert welcome_message(_bot(**settings), said.encode()) is None
    assert welcome_message(_bot(), STARTED) is None


@pytest.mark.parametrize(
    ("settings", "paths"),
    [
        ({"welcome_text": "Hi", "welcome_buttons": "Start"}, []),
        ({"welcome_text": "x" * 7001}, ["settings.welcome_text"]),
        ({"welcome_buttons": "Start"}, ["settings.welcome_buttons"]),
        ({"welcome_text": "Hi", "welcome_buttons": ",".join("abcdefg")},
         ["settings.welcome_buttons"]),
        ({"welcome_text": "Hi", "welcome_buttons": ["ok", " ", "y" * 251]},
         ["settings.welcome_buttons[1]", "settings.welcome_buttons[2]"]),
    ],
)  # fmt: skip
def test_settings_viber_would_refuse_are_named(
    settings: dict[str, object], paths: list[str]
) -> None:
    assert [p for p, _ in problems(settings)] == paths


def test_the_welcome_is_from_the_bot_as_its_sends_are() -> None:
    """One sender for sends and the welcome (viber_bodies): the welcome wrote its own and
    left out the account's avatar that every send carries."""
    bot = _bot(welcome_text="Hi", sender_name="Shop", sender_avatar="https://a.test/a.png")
    message = welcome_message(bot, STARTED)
    assert message is not None
    assert message["sender"] == {"name": "Shop", "avatar": "https://a.test/a.png"}
