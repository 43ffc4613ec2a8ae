"""Secrets inside commands, sealed for the service that opens them: AES-256-GCM with that
service's keyring (:class:`~switchboard.runtime.crypto.Keyring`), bound to what they are for
(command, session, field) so a sealed value cannot be replayed into another command.

A command on a durable stream may outlive its handling (a failed erase, a dead letter, a
backup); a sealed secret in it stays unreadable without the service's key.
"""

from __future__ import annotations

from switchboard.runtime.crypto import DecryptError, Keyring

__all__ = ["DecryptError", "open_sealed", "seal", "sealed_for"]


def sealed_for(command: str, subject: str, field: str) -> bytes:
    """The associated data binding a sealed value to its place."""
    return f"sealed/{command}/{subject}/{field}".encode()


def seal(keyring: Keyring, command: str, subject: str, field: str, value: str) -> str:
    """``value`` sealed for the service holding ``keyring``, for this command and field."""
    return keyring.encrypt(value.encode(), sealed_for(command, subject, field))


def open_sealed(keyring: Keyring, command: str, subject: str, field: str, token: str) -> str:
    """The plaintext of a sealed value; :class:`DecryptError` when the key is unknown, the
    value was tampered with, or it was sealed for another command, subject or field."""
    return keyring.decrypt(token, sealed_for(command, subject, field)).decode()
