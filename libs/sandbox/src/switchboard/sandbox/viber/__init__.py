"""Fake Viber REST bot API: set_webhook check, send_message limits, signed callbacks, traffic."""

from switchboard.sandbox.viber.callbacks import signature
from switchboard.sandbox.viber.config import CallbackSettings, ViberConfig, ViberLimits
from switchboard.sandbox.viber.provider import DEMO_VIBER_TOKEN, DEMO_VIBER_URI, ViberProvider
from switchboard.sandbox.viber.state import ViberBot, ViberUser
from switchboard.sandbox.viber.traffic import DEFAULT_MIX, GeneratedCallback

__all__ = [
    "DEFAULT_MIX",
    "DEMO_VIBER_TOKEN",
    "DEMO_VIBER_URI",
    "CallbackSettings",
    "GeneratedCallback",
    "ViberBot",
    "ViberConfig",
    "ViberLimits",
    "ViberProvider",
    "ViberUser",
    "signature",
]
