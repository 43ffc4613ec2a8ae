"""Updates of a bot: numbering, allowed_updates filtering, queueing and getUpdates."""

from __future__ import annotations

from typing import Any

from switchboard.sandbox.telegram.state import TgBot

UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


def update_type(update: dict[str, Any]) -> str:
    """Which kind of update this is (its one field besides update_id)."""
    kinds = [key for key in update if key != "update_id"]
    if len(kinds) != 1:
        raise ValueError("an Update carries exactly one field besides update_id")
    return kinds[0]


def is_allowed(bot: TgBot, kind: str) -> bool:
    """Whether the bot's allowed_updates lets this kind through."""
    allowed = bot.webhook.allowed_updates
    if not allowed:
        return kind not in NOT_BY_DEFAULT
    return kind in allowed


def push_update(bot: TgBot, update: dict[str, Any]) -> dict[str, Any] | None:
    """Number the update and queue it; None when allowed_updates filters it out.

    A caller-provided update_id is replaced: ids increase by one per bot, as on Telegram.
    """
    kind = update_type(update)
    if not is_allowed(bot, kind):
        return None
    numbered = {"update_id": bot.next_update_id, kind: update[kind]}
    bot.next_update_id += 1
    bot.updates.put(numbered, ref=str(numbered["update_id"]))
    return numbered


async def get_updates(bot: TgBot, offset: int | None, limit: int, timeout: float) -> list[Any]:
    """getUpdates: confirm everything below `offset`, then return up to `limit` updates,
    waiting up to `timeout` seconds for the first one."""
    if offset is not None:
        if offset < 0:
            older = list(bot.updates.items)[: max(bot.updates.pending + offset, 0)]
            dropped = {id(item) for item in older}
            bot.updates.discard(lambda item: id(item) in dropped)
        else:
            bot.updates.discard(lambda item: int(item.payload["update_id"]) < offset)
    if not bot.updates.items and timeout > 0:
        await bot.updates.wait_changed(timeout)
    return [item.payload for item in list(bot.updates.items)[:limit]]
