"""The sandbox's exceptions under one root, so one ``except SandboxError`` catches
everything the fakes raise on purpose. Each lives beside the code that raises it.

The tree (``tests/unit/test_exception_roots.py`` checks it against the code)::

    SandboxError
    ├── ControlError        httpjson          a control request that cannot be served:
    │                                         ``{"error": ...}`` with its status
    ├── TelegramError       telegram.errors   a Bot API error in Telegram's own shape
    ├── GraphError          graph             a Graph API error in Meta's shape (the
    │                                         WhatsApp Cloud API and the Conversions API)
    ├── VerificationError   whatsapp.webhook  the callback URL did not pass Meta's handshake
    ├── ViberError          viber.errors      a Viber REST API status in Viber's shape
    ├── SendPulseError      sendpulse.errors  a SendPulse REST error in its own shape
    ├── RpcError            mtproto.errors    an MTProto RPC error (``FLOOD_WAIT_3``...)
    ├── FramingError        mtproto_wire.framing    a broken MTProto transport frame
    ├── CryptoError         mtproto_wire.crypto     a message that does not decrypt or verify
    └── HandshakeError      mtproto_wire.handshake  an auth key exchange gone wrong
"""

from __future__ import annotations


class SandboxError(Exception):
    """The root of every exception the sandbox raises on purpose (tree above)."""
