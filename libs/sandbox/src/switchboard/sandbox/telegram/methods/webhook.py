"""setWebhook, deleteWebhook, getWebhookInfo and getUpdates."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from switchboard.sandbox.telegram.errors import bad_request, conflict
from switchboard.sandbox.telegram.methods.base import Answer, Call, method
from switchboard.sandbox.telegram.state import TgBot, WebhookSettings
from switchboard.sandbox.telegram.updates import UPDATE_TYPES, get_updates
from switchboard.sandbox.webhooks import WebhookTarget

SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]*$")
WEBHOOK_PORTS = (80, 88, 443, 8443)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105  (a header name)


def _check_url(call: Call, url: str) -> None:
    parts = urlsplit(url)
    strict = call.state.config.require_https_webhook
    schemes = ("https",) if strict else ("http", "https")
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise bad_request("bad webhook: HTTPS url must be provided for webhook")
    if strict and (parts.port or 443) not in WEBHOOK_PORTS:
        raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")


def _secret(call: Call) -> str | None:
    secret = call.params.text("secret_token")
    if not secret:
        return None
    if len(secret) > 256:
        raise bad_request("secret token is too long")
    if not SECRET_PATTERN.match(secret):
        raise bad_request("secret token contains unallowed characters")
    return secret


def _allowed_updates(call: Call, current: list[str] | None) -> list[str] | None:
    if not call.params.has("allowed_updates"):
        return current
    value = call.params.json("allowed_updates", "can't parse allowed_updates JSON array")
    if value is None:
        return current
    if not isinstance(value, list):
        raise bad_request("allowed_updates must be an Array")
    return [kind for kind in (str(v) for v in value) if kind in UPDATE_TYPES]


def apply_webhook(bot: TgBot, settings: WebhookSettings) -> None:
    """Point the bot's update queue at the configured URL (or stop delivering)."""
    bot.webhook = settings
    if not settings.url:
        bot.updates.set_target(None)
        return
    headers = {SECRET_HEADER: settings.secret_token} if settings.secret_token else {}
    bot.updates.set_target(WebhookTarget(url=settings.url, headers=headers))


@method("setWebhook")
async def set_webhook(call: Call) -> Any:
    params = call.params
    url = (params.text("url") or "").strip()
    if not url:
        return await delete_webhook(call)
    _check_url(call, url)
    secret = _secret(call)
    connections = max(1, min(100, params.integer("max_connections") or 40))
    allowed = _allowed_updates(call, call.bot.webhook.allowed_updates)
    settings = WebhookSettings(
        url=url, secret_token=secret, max_connections=connections, allowed_updates=allowed
    )
    if params.boolean("drop_pending_updates"):
        call.bot.updates.clear()
    unchanged = settings == call.bot.webhook
    apply_webhook(call.bot, settings)
    return Answer(True, "Webhook is already set" if unchanged else "Webhook was set")


@method("deleteWebhook")
async def delete_webhook(call: Call) -> Any:
    had = bool(call.bot.webhook.url)
    if call.params.boolean("drop_pending_updates"):
        call.bot.updates.clear()
    apply_webhook(call.bot, WebhookSettings(allowed_updates=call.bot.webhook.allowed_updates))
    return Answer(True, "Webhook was deleted" if had else "Webhook is already deleted")


@method("getWebhookInfo")
async def get_webhook_info(call: Call) -> Any:
    bot = call.bot
    info: dict[str, Any] = {
        "url": bot.webhook.url,
        "has_custom_certificate": False,
        "pending_update_count": bot.updates.pending,
    }
    if bot.webhook.url:
        info["max_connections"] = bot.webhook.max_connections
        host = urlsplit(bot.webhook.url).hostname or ""
        if re.fullmatch(r"[\d.]+", host):
            info["ip_address"] = host
    if bot.updates.last_error_date is not None:
        info["last_error_date"] = bot.updates.last_error_date
        info["last_error_message"] = bot.updates.last_error_message
    if bot.webhook.allowed_updates is not None:
        info["allowed_updates"] = list(bot.webhook.allowed_updates)
    return info


@method("getUpdates")
async def get_updates_method(call: Call) -> Any:
    bot = call.bot
    if bot.webhook.url:
        raise conflict(
            "can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first"
        )
    params = call.params
    bot.webhook.allowed_updates = _allowed_updates(call, bot.webhook.allowed_updates)
    limit = max(1, min(100, params.integer("limit") or 100))
    timeout = max(0.0, min(50.0, float(params.integer("timeout") or 0)))
    return await get_updates(bot, params.integer("offset"), limit, timeout)
