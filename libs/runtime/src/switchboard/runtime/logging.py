"""structlog set-up: JSON lines when not on a TTY, correlation ids from context, and secrets
redacted both by key name and by value (every configured secret is registered here)."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# A session (a Telethon StringSession) is a secret; the id that names one is not, and an
# operator needs it to tell which session failed.
_SECRET_KEYS = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|session(?!_?ids?$)|credential|private)",
    re.I,
)
_secret_values: set[str] = set()
REDACTED = "[redacted]"

# Secrets recognisable by their shape, redacted even if nobody registered them (defence in
# depth: a token logged before its account was loaded, a library logging a URL).
_SECRET_SHAPES = (
    # Telegram bot tokens, e.g. inside Bot API URLs (/bot<id>:<secret>/method)
    re.compile(r"(?<!\d)\d{5,15}:[A-Za-z0-9_-]{20,}"),
    # credentials in headers and query strings
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)([?&](access_token|token|secret|api_key|apikey|key|password)=)[^&\s\"']+"),
)


def register_secret(value: str | None) -> None:
    """Make ``value`` unloggable: any log field containing it is redacted."""
    if value and len(value) >= 4:
        _secret_values.add(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secret_values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        for shape in _SECRET_SHAPES:
            value = shape.sub(_redact_match, value)
        return value
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEYS.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def _redact_match(match: re.Match[str]) -> str:
    # Keep a query parameter's name (``?access_token=``) so the line still reads.
    prefix = (
        match.group(1) if match.re.groups >= 2 and match.group(1).startswith(("?", "&")) else ""
    )
    return prefix + REDACTED


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: redact secret-looking keys and every registered secret value."""
    for key in list(event_dict):
        if key != "event" and _SECRET_KEYS.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(service: str, level: str = "info", json: bool | None = None) -> None:
    """Configure structlog and route stdlib logging (uvicorn, nats, asyncpg) through it."""
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.bind_contextvars(service=service)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    """A structlog logger (bound with the service name by :func:`configure_logging`)."""
    return structlog.get_logger(name)
