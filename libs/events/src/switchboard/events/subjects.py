"""Subject builders and parsers.

Events: ``<domain>.<event>.v<N>[.<routing tokens>]``; commands:
``cmd.<domain>.<command>.v<N>[.<routing tokens>]`` (DESIGN §2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

# NATS tokens may not contain '.', '*', '>' or whitespace; everything outside this safe set is
# percent-encoded so that any provider id (usernames, phone numbers with '+', emails) maps to
# exactly one token and back.
_SAFE = "-_@+=:~!$&'(),;"
_VERSION = re.compile(r"^v([1-9][0-9]*)$")


def token(value: str | int) -> str:
    """Encode a value as a single NATS subject token (reversible with :func:`untoken`)."""
    text = str(value)
    if text == "":
        return "_"  # an empty token is not allowed; "_" stands for it...
    if text == "_":
        return "%5F"  # ...so a literal "_" must be escaped to stay distinct
    return quote(text, safe=_SAFE).replace(".", "%2E").replace("*", "%2A")


def untoken(value: str) -> str:
    """Inverse of :func:`token`."""
    return "" if value == "_" else unquote(value)


def event_subject(name: str, version: int, tokens: tuple[str, ...] = ()) -> str:
    """``<domain>.<event>.v<N>`` followed by the encoded routing tokens."""
    return ".".join([name, f"v{version}", *(token(t) for t in tokens)])


def command_subject(name: str, version: int, tokens: tuple[str, ...] = ()) -> str:
    """``cmd.<domain>.<command>.v<N>`` followed by the encoded routing tokens."""
    return "cmd." + event_subject(name, version, tokens)


def raw_subject(provider: str, account: str) -> str:
    """Subject of a verified provider payload in ``RAW``: ``raw.<provider>.v1.<account>``."""
    return f"raw.{token(provider)}.v1.{token(account)}"


@dataclass(frozen=True, slots=True)
class ParsedSubject:
    """The parts of a catalog subject."""

    kind: str  # "event" or "command"
    name: str  # "<domain>.<event>"
    version: int
    tokens: tuple[str, ...]


def parse_subject(subject: str) -> ParsedSubject:
    """Split a catalog subject into kind, name, version and decoded routing tokens."""
    parts = subject.split(".")
    kind = "event"
    if parts and parts[0] == "cmd":
        kind, parts = "command", parts[1:]
    if len(parts) < 3:
        raise ValueError(f"subject {subject!r} is not <domain>.<name>.v<N>[...]")
    match = _VERSION.match(parts[2])
    if match is None:
        raise ValueError(f"subject {subject!r} has no version token at position 3")
    return ParsedSubject(
        kind=kind,
        name=f"{parts[0]}.{parts[1]}",
        version=int(match.group(1)),
        tokens=tuple(untoken(p) for p in parts[3:]),
    )
