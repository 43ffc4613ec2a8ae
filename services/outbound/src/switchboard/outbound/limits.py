"""Which shared limits a send takes, per channel (PROTOCOLS.md), overridable per account
with ``account.settings["limits"]``: {"bot": [30, 1, 5], "chat": [1, 1], "group": [20, 60]}
meaning [count, per seconds, burst (optional)].

An account's own limit (a bot's 30/s) is kept as the provider's sliding window (``window``),
which is what makes it safe; its burst only lets the pace catch up a few slots after a send
that the window held back, instead of losing them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switchboard.events.catalog.outbound import recipient_key
from switchboard.outbound.ratelimit import Limit, LimitKey
from switchboard.runtime.accounts import Account

# How many slots an account's pace may catch up after the window held one back, at least
# an interval / CATCH_UP apart: with 1, a held slot delays every later one (about 4 % of a
# bot's rate under load, simulated with lateness measured at load 4); with 3, about 0.5 %.
# Few and spread, so a 429 from a provider stricter than configured pauses every instance
# before the next send leaves (a 30/s bot: 11 ms apart).
CATCH_UP = 3

DEFAULTS: dict[str, dict[str, Limit]] = {
    "telegram": {"bot": Limit(30, burst=CATCH_UP), "chat": Limit(1), "group": Limit(20, 60)},
    "whatsapp": {"number": Limit(80, burst=CATCH_UP), "pair": Limit(1, 6)},
    # 100 messages per user per hour without a reply: a conversation's 10 messages at once
    # (a flow's answer and its next question), then one per 40 s. GCRA lets through at most
    # 1 + (3600 + 10 * 40) / 40 = 100 in any hour (the limit margin's longer steps fewer),
    # never a 101st; spread evenly (1 per 36 s), a two-message answer took 36 s to finish,
    # after the user had just written.
    "viber": {"bot": Limit(50, burst=CATCH_UP), "user": Limit(90, 3600, burst=11)},
    "generic": {"endpoint": Limit(50, burst=CATCH_UP)},
    # A user account: Telegram answers bursts with FLOOD_WAIT (and restricts spammy
    # accounts); about one message a second, and one per second to the same chat.
    "mtproto": {"account": Limit(1), "chat": Limit(1), "group": Limit(20, 60)},
    "metacapi": {"requests": Limit(10)},
    # About 10 requests per second per account.
    "sendpulse": {"requests": Limit(10)},
}
_PRIMARY = {
    "telegram": "bot",
    "whatsapp": "number",
    "viber": "bot",
    "generic": "endpoint",
    "mtproto": "account",
    "metacapi": "requests",
    "sendpulse": "requests",
}


def _limits(kind: str, account: Account) -> dict[str, Limit]:
    limits = dict(DEFAULTS.get(kind, {}))
    overrides: Any = account.settings.get("limits") or {}
    for name, value in overrides.items():
        count, per = value[0], value[1] if len(value) > 1 else 1
        burst = int(value[2]) if len(value) > 2 else 1
        limits[name] = Limit(float(count), float(per), max(1, burst))
    return limits


def is_group(chat: str) -> bool:
    """Telegram groups and channels have negative ids or @usernames."""
    return chat.startswith(("-", "@"))


@dataclass(frozen=True)
class SendLimits:
    """The account's key (leased in blocks), the recipient's key if it has one, and the
    names a 429 pauses (account, recipient)."""

    account: LimitKey
    recipient: LimitKey | None
    account_pause: str
    recipient_pause: str


def account_key(account: Account, kind: str | None = None) -> LimitKey:
    """The account-wide limit (a bot's 30/s, a number's 80/s)."""
    kind = kind or account.channel.value
    limits = _limits(kind, account)
    name = _PRIMARY.get(kind, "endpoint")
    return LimitKey(f"{kind}.{account.id}.{name}", limits.get(name, Limit(50)))


def account_rate(account: Account, kind: str | None = None) -> float:
    """Sends per second the account permits."""
    return 1.0 / account_key(account, kind).limit.interval


def send_limits(account: Account, recipient: str) -> SendLimits:
    """The limit keys a send to ``recipient`` through ``account`` must take."""
    channel = account.channel.value
    limits = _limits(channel, account)
    base = f"{channel}.{account.id}"
    who = f"{base}.to.{recipient_key(channel, recipient)}"
    per_recipient: Limit | None = None
    if channel in ("telegram", "mtproto"):
        per_recipient = limits["group"] if is_group(recipient) else limits["chat"]
    elif channel == "whatsapp":
        per_recipient = limits["pair"]
    elif channel == "viber":
        per_recipient = limits["user"]
    return SendLimits(
        account=account_key(account),
        recipient=LimitKey(who, per_recipient) if per_recipient is not None else None,
        account_pause=base,
        recipient_pause=who,
    )
