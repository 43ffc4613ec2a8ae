"""The MTProto gateway's exceptions under one root, so one ``except MtprotoServiceError``
catches everything it raises on purpose. Each lives beside the code that raises it.

The tree (``tests/unit/test_exception_roots.py`` checks it against the code)::

    MtprotoServiceError
    ├── MtprotoError                   ports          a failure Telegram reported (``reason``
    │   │                                             is the RPC error name); the port's
    │   │                                             adapters raise these, never Telethon's
    │   ├── FloodWaitError             ports          420 FLOOD_WAIT_X: wait ``seconds``
    │   ├── AuthKeyDuplicatedError     ports          406: the auth key was destroyed
    │   ├── AuthKeyUnregisteredError   ports          401: logged out elsewhere
    │   ├── UserDeactivatedError       ports          401: banned or deleted
    │   ├── PhoneNumberInvalidError    ports          login: not a phone number
    │   ├── PhoneNumberBannedError     ports          login: the number is banned
    │   ├── PhoneNumberUnoccupiedError ports          login: no account uses the number
    │   ├── PhoneCodeInvalidError      ports          login: a wrong code
    │   ├── PhoneCodeExpiredError      ports          login: the code expired
    │   ├── PasswordNeededError        ports          login: two-step verification is on
    │   ├── PasswordInvalidError       ports          login: a wrong 2FA password
    │   ├── PeerNotFoundError          ports          a chat this account cannot resolve
    │   ├── ChatWriteForbiddenError    ports          the account may not write there
    │   ├── JoinRefusedError           ports          a channel would not take the account
    │   └── DisconnectedError          ports          the connection is gone
    ├── DeferredError                  floods         a flood wait too long to hold: resume
    │                                                 at ``resume_at``
    ├── SessionBusyError               login          another instance holds the session
    └── RefusedError                   login_secrets  a login secret in the clear or that
                                                      does not open
"""

from __future__ import annotations


class MtprotoServiceError(Exception):
    """The root of every exception the mtproto service raises on purpose (tree above)."""
