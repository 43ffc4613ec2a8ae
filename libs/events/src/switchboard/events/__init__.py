"""Switchboard event catalog: the public contract between services and with other teams.

Typical use::

    from switchboard.events import encode, decode
    from switchboard.events.catalog.outbound import SendMessage
"""

from switchboard.events import catalog
from switchboard.events.base import Command, Event, Message
from switchboard.events.codec import Decoded, DecodeError, Encoded, decode, decode_message, encode
from switchboard.events.envelope import Envelope, EnvelopeError
from switchboard.events.publish import publish
from switchboard.events.registry import all_models, latest_version, model_for, register, upcaster

__all__ = [
    "Command",
    "DecodeError",
    "Decoded",
    "Encoded",
    "Envelope",
    "EnvelopeError",
    "Event",
    "Message",
    "all_models",
    "catalog",
    "decode",
    "decode_message",
    "encode",
    "latest_version",
    "model_for",
    "publish",
    "register",
    "upcaster",
]
