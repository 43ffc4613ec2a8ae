"""Which shared limits a send takes, per channel (PROTOCOLS.md), overridable per account
with ``account.settings["limits"]``: {"bot": [30, 1], "chat": [1, 1], "group": [20, 60]}
meaning [count, per seconds]."""

from __future__ import annotations

from typing import Any

from switchboard.events.catalog.outbound import SendMessage
from switchboard.outbound.ratelimit import Limit, LimitKey
from switchboard.runtime.accounts import Account

DEFAULTS: dict[str, dict[str, Limit]] = {
    "telegram": {"bot": Limit(30), "chat": Limit(1), "group": Limit(20, 60)},
    "whatsapp": {"number": Limit(80), "pair": Limit(1, 6)},
    # 100 messages per user per hour without a reply: spread evenly, never a burst.
    "viber": {"bot": Limit(50), "user": Limit(100, 3600)},
    "generic": {"endpoint": Limit(50)},
}


def _limits(account: Account) -> dict[str, Limit]:
    limits = dict(DEFAULTS.get(account.channel.value, {}))
    overrides: Any = account.settings.get("limits") or {}
    for name, value in overrides.items():
        count, per = value[0], value[1] if len(value) > 1 else 1
        limits[name] = Limit(float(count), float(per))
    return limits


def is_group(chat: str) -> bool:
    """Telegram groups and channels have negative ids or @usernames."""
    return chat.startswith(("-", "@"))


def limit_keys(account: Account, cmd: SendMessage) -> tuple[list[LimitKey], list[str]]:
    """The limit keys a send must reserve, and the pause names that can hold it back."""
    limits = _limits(account)
    base = f"{account.channel.value}.{account.id}"
    who = f"{base}.to.{cmd.recipient}"
    if account.channel.value == "telegram":
        chat_limit = limits["group"] if is_group(cmd.recipient) else limits["chat"]
        keys = [LimitKey(f"{base}.bot", limits["bot"]), LimitKey(who, chat_limit)]
    elif account.channel.value == "whatsapp":
        keys = [LimitKey(f"{base}.number", limits["number"]), LimitKey(who, limits["pair"])]
    elif account.channel.value == "viber":
        keys = [LimitKey(f"{base}.bot", limits["bot"]), LimitKey(who, limits["user"])]
    else:
        keys = [LimitKey(f"{base}.endpoint", limits.get("endpoint", Limit(50)))]
    return keys, [base, who]


def pause_name(account: Account, recipient: str, recipient_scope: bool) -> str:
    base = f"{account.channel.value}.{account.id}"
    return f"{base}.to.{recipient}" if recipient_scope else base
