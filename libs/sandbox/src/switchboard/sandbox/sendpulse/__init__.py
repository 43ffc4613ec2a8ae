"""Fake SendPulse REST API: OAuth client credentials, address books, SMTP email and SMS."""

from switchboard.sandbox.sendpulse.config import SendPulseConfig, SendPulseLimits
from switchboard.sandbox.sendpulse.provider import (
    DEMO_ADDRESS_BOOK,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    SendPulseProvider,
)
from switchboard.sandbox.sendpulse.state import SentEmail, SentSms, SpAccount, SpAddressBook

__all__ = [
    "DEMO_ADDRESS_BOOK",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "SendPulseConfig",
    "SendPulseLimits",
    "SendPulseProvider",
    "SentEmail",
    "SentSms",
    "SpAccount",
    "SpAddressBook",
]
