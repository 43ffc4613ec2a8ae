"""Viber's welcome message: the one message a bot may send a user who has only opened the
chat (``conversation_started``, not subscribed yet), given as the answer to that callback
itself; nothing sent later reaches such a user (``receiverNotSubscribed``).

A Viber account's ``settings.welcome_text`` is that answer, with ``settings.welcome_buttons``
(``Start,Prices``: reply buttons, up to six) under it: a press sends the button's text as
the user's first message, which subscribes them and starts whatever a flow does with it.
Ingest answers with :func:`welcome_message`; the account check refuses settings Viber
would refuse (:func:`problems`), so a bad one is named when the account is saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from switchboard.events.catalog.outbound import Button, Keyboard
from switchboard.runtime.accounts import Account
from switchboard.runtime.settings import comma_items
from switchboard.runtime.viber_bodies import keyboard_json, sender

TEXT_MAX = 7000  # Viber's text message limit (characters)
BUTTONS_MAX = 6  # one keyboard row: six columns
BUTTON_TEXT_MAX = 250


def _text(settings: Mapping[str, Any]) -> str | None:
    value = settings.get("welcome_text")
    return str(value) if value else None


def _buttons(settings: Mapping[str, Any]) -> list[str]:
    value = settings.get("welcome_buttons")
    if not value:
        return []
    return [str(b) for b in value] if isinstance(value, list) else comma_items(value)


def problems(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(settings.<name>, why)`` for each welcome setting Viber would refuse."""
    found: list[tuple[str, str]] = []
    text, buttons = _text(settings), _buttons(settings)
    if text is not None and len(text) > TEXT_MAX:
        found.append(("settings.welcome_text", f"more than {TEXT_MAX} characters"))
    if buttons and text is None:
        found.append(("settings.welcome_buttons", "buttons need a settings.welcome_text"))
    if len(buttons) > BUTTONS_MAX:
        found.append(("settings.welcome_buttons", f"more than {BUTTONS_MAX} buttons"))
    for i, button in enumerate(buttons):
        if not button.strip() or len(button) > BUTTON_TEXT_MAX:
            found.append((f"settings.welcome_buttons[{i}]", f"1 to {BUTTON_TEXT_MAX} characters"))
    return found


def welcome_message(account: Account, callback: bytes) -> dict[str, Any] | None:
    """The answer to ``callback`` when it is a ``conversation_started`` and the account has
    a welcome (a send_message body without ``receiver``, as Viber takes it), else None."""
    text = _text(account.settings)
    if text is None or b"conversation_started" not in callback:
        return None  # the cheap look first: every other callback passes here
    if orjson.loads(callback).get("event") != "conversation_started":
        return None
    message: dict[str, Any] = {"sender": sender(account), "type": "text", "text": text}
    row = tuple(Button(text=b) for b in _buttons(account.settings))
    if (keyboard := keyboard_json(Keyboard(type="reply", rows=(row,)))) is not None:
        message["keyboard"] = keyboard
    return message
