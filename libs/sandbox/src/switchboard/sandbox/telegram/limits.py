"""Telegram's flood limits applied to sending methods: per bot, per private chat, per group."""

from __future__ import annotations

from switchboard.sandbox.ratelimit import Rule
from switchboard.sandbox.telegram.errors import too_many_requests
from switchboard.sandbox.telegram.state import TelegramState, TgBot, TgChat


def limit_keys(
    state: TelegramState, bot: TgBot, chat: TgChat, paid: bool = False
) -> list[tuple[str, Rule]]:
    """The limiter keys one message to `chat` consumes.

    The bot-wide rule (or the paid broadcast rule when `allow_paid_broadcast` is set), plus
    the private-chat rule for users or the group rule for groups, supergroups and channels.
    """
    limits = state.config.limits
    if not limits.enabled:
        return []
    keys: list[tuple[str, Rule]] = []
    overall = limits.paid_broadcast if paid else limits.bot
    if overall is not None:
        keys.append((f"{'paid' if paid else 'bot'}:{bot.id}", overall))
    per_chat = limits.private_chat if chat.type == "private" else limits.group
    if per_chat is not None:
        keys.append((f"chat:{bot.id}:{chat.id}", per_chat))
    return keys


def take_send_slot(
    state: TelegramState, bot: TgBot, chat: TgChat, now: float, paid: bool = False
) -> None:
    """Count one accepted message, or raise the 429 the real API would answer."""
    keys = limit_keys(state, bot, chat, paid)
    decision = state.limiter.acquire(keys, now, penalty=state.config.limits.penalty)
    if not decision.allowed:
        raise too_many_requests(decision.retry_after)
