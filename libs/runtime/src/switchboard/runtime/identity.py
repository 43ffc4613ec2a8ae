"""Keyed hashes of personal identifiers (phone numbers, provider user ids, event ids that
name a chat), with the deployment's identity pepper (``SWITCHBOARD_IDENTITY_PEPPER``).

Keyed (HMAC-SHA256) because phone numbers and numeric user ids are few enough to enumerate:
an unkeyed SHA-256 of one is as good as the number to anyone holding the table. Every
projection that keeps a stand-in for an identifier uses this one function, configured once
at start-up from its settings; changing the pepper changes every stand-in, so it needs a
rebuild of those projections. Contact ids and identity claim keys (``runtime.claims``) are
keyed too, and claims are found by them: the pepper must never change once contacts exist.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from switchboard.runtime.logging import register_secret

# The pepper of `just up` and the tests; a deployment sets its own (it is a secret).
DEV_PEPPER = "switchboard-dev-identity-pepper"
_pepper = DEV_PEPPER.encode()


def configure(pepper: str) -> None:
    """Use ``pepper`` from now on (before any projection runs); cached hashes are forgotten."""
    global _pepper
    register_secret(pepper)  # never in a log line
    _pepper = pepper.encode()
    keyed_hash.cache_clear()


@lru_cache(maxsize=65536)  # computed per event; the same chats recur all through a stream
def keyed_hash(*parts: str) -> str:
    """32 hex digits of HMAC-SHA256(pepper, parts joined by the unit separator)."""
    return hmac.new(_pepper, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()[:32]
