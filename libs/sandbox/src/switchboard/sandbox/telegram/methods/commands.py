"""setMyCommands, getMyCommands and deleteMyCommands: a bot's command menu per scope and
language, checked as the Bot API checks it (1-32 lowercase letters, digits and underscores;
a description of 1-256 characters; at most 100 commands)."""

from __future__ import annotations

import json
import re
from typing import Any

from switchboard.sandbox.telegram.errors import bad_request
from switchboard.sandbox.telegram.methods.base import Call, method

MAX_COMMANDS = 100
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
SCOPES = {
    "default",
    "all_private_chats",
    "all_group_chats",
    "all_chat_administrators",
    "chat",
    "chat_administrators",
    "chat_member",
}


def _key(call: Call) -> tuple[str, str]:
    scope = call.params.json("scope", "can't parse BotCommandScope JSON object")
    if scope is None:
        scope = {"type": "default"}
    if not isinstance(scope, dict) or scope.get("type") not in SCOPES:
        raise bad_request("unsupported bot command scope type")
    language = call.params.text("language_code") or ""
    if language and not re.fullmatch(r"[a-z]{2}", language):
        raise bad_request("invalid language code specified")
    return json.dumps(scope, sort_keys=True), language


@method("setMyCommands")
async def set_my_commands(call: Call) -> Any:
    commands = call.params.json("commands", "can't parse commands JSON object")
    if not isinstance(commands, list):
        raise bad_request("can't parse commands JSON object")
    if len(commands) > MAX_COMMANDS:
        raise bad_request("BOT_COMMANDS_TOO_MUCH")
    menu: list[dict[str, str]] = []
    for item in commands:
        if not isinstance(item, dict):
            raise bad_request("can't parse BotCommand JSON object")
        command = str(item.get("command") or "").removeprefix("/")
        description = str(item.get("description") or "")
        if not _COMMAND.match(command):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(description.strip()) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        menu.append({"command": command, "description": description})
    key = _key(call)
    if menu:
        call.bot.commands[key] = menu
    else:
        call.bot.commands.pop(key, None)
    call.bot.command_calls.append(
        {"method": "setMyCommands", "scope": key[0], "language_code": key[1], "commands": menu}
    )
    return True


@method("getMyCommands")
async def get_my_commands(call: Call) -> Any:
    return list(call.bot.commands.get(_key(call), []))


@method("deleteMyCommands")
async def delete_my_commands(call: Call) -> Any:
    key = _key(call)
    call.bot.commands.pop(key, None)
    call.bot.command_calls.append(
        {"method": "deleteMyCommands", "scope": key[0], "language_code": key[1], "commands": []}
    )
    return True
