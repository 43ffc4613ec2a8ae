"""Fake Telegram Bot API: methods, limits, files, webhook delivery and traffic generation."""

from switchboard.sandbox.telegram.config import TelegramConfig, TelegramLimits
from switchboard.sandbox.telegram.provider import DEMO_TOKEN, DEMO_USERNAME, TelegramProvider
from switchboard.sandbox.telegram.state import TgBot, TgChat
from switchboard.sandbox.telegram.traffic import DEFAULT_MIX, GeneratedUpdate

__all__ = [
    "DEFAULT_MIX",
    "DEMO_TOKEN",
    "DEMO_USERNAME",
    "GeneratedUpdate",
    "TelegramConfig",
    "TelegramLimits",
    "TelegramProvider",
    "TgBot",
    "TgChat",
]
