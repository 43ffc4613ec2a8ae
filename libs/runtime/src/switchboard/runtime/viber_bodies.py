"""The parts of a Viber message body that outbound's sends and ingest's welcome answer both
write, so the two never differ: who the message is from, and a keyboard."""

from __future__ import annotations

from typing import Any

from switchboard.events.catalog.outbound import Keyboard
from switchboard.runtime.accounts import Account

SENDER_NAME_MAX = 28  # Viber shows `sender.name` as who wrote; it takes 28 characters
KEYBOARD_COLUMNS = 6


def sender(account: Account) -> dict[str, Any]:
    """The body's ``sender``: the account's ``sender_name`` (the bot's name, stored when it
    was added) or its id, and its ``sender_avatar`` when it has one."""
    name = str(account.settings.get("sender_name") or account.id)[:SENDER_NAME_MAX]
    found: dict[str, Any] = {"name": name}
    if account.settings.get("sender_avatar"):
        found["avatar"] = str(account.settings["sender_avatar"])
    return found


def keyboard_json(keyboard: Keyboard) -> dict[str, Any] | None:
    """Viber's keyboard for our Keyboard; None for "remove" (a message without a keyboard
    hides the previous one) or when there are no buttons. `one_time` has no Viber form."""
    if keyboard.type == "remove":
        return None
    buttons: list[dict[str, Any]] = []
    for row in keyboard.rows:
        if not row:
            continue
        columns = max(1, KEYBOARD_COLUMNS // len(row))
        for button in row:
            item: dict[str, Any] = {"Columns": columns, "Rows": 1, "Text": button.text}
            if button.url:
                item.update(ActionType="open-url", ActionBody=button.url)
            else:
                item.update(ActionType="reply", ActionBody=button.callback_data or button.text)
            buttons.append(item)
    if not buttons:
        return None
    return {"Type": "keyboard", "DefaultHeight": False, "Buttons": buttons}
