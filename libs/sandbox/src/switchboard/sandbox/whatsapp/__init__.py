"""Fake WhatsApp Cloud API: sends with Meta's limits and errors, signed webhooks, traffic."""

from switchboard.sandbox.whatsapp.config import StatusSettings, WhatsAppConfig, WhatsAppLimits
from switchboard.sandbox.whatsapp.provider import (
    DEMO_APP_SECRET,
    DEMO_PHONE_NUMBER_ID,
    DEMO_VERIFY_TOKEN,
    DEMO_WA_TOKEN,
    WhatsAppProvider,
)
from switchboard.sandbox.whatsapp.state import Subscription, WaNumber, WaUser
from switchboard.sandbox.whatsapp.traffic import DEFAULT_MIX, GeneratedEvent
from switchboard.sandbox.whatsapp.webhook import VerificationError, signature

__all__ = [
    "DEFAULT_MIX",
    "DEMO_APP_SECRET",
    "DEMO_PHONE_NUMBER_ID",
    "DEMO_VERIFY_TOKEN",
    "DEMO_WA_TOKEN",
    "GeneratedEvent",
    "StatusSettings",
    "Subscription",
    "VerificationError",
    "WaNumber",
    "WaUser",
    "WhatsAppConfig",
    "WhatsAppLimits",
    "WhatsAppProvider",
    "signature",
]
